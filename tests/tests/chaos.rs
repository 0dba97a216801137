//! Chaos (#26's proof): real Kafka and Chroma, the strict fake Discord, five channels (one
//! rate-limited hard), creates answered 502 after creating, no nonce deduplication, the bot
//! SIGKILLed three times and the processor twice while messages keep coming, Chroma restarted:
//! every trigger gets exactly one reply and every message is indexed. 150 triggers here;
//! `RTFM_CHAOS_FULL=1` for 1 000 (docs/benchmarks.md).

mod common;

use common::*;

/// A message from the fake's gateway, posted now (catch-up asks only recent triggers).
fn live(id: u64, channel: u64, author: u64, content: &str) -> serde_json::Value {
    fake_discord::message_now(id, channel, Some(3), author, content)
}

/// #26's chaos run: real Kafka, a private Chroma, the strict fake Discord (no nonce
/// deduplication, every 20th create answered 502 after creating the message, one channel
/// rate-limited for most of the run). While triggers and plain messages keep arriving on five
/// channels, the bot is SIGKILLed three times (messages arrive while it is down, and Discord
/// will never replay them: the catch-up must find them), the processor twice, and Chroma is
/// restarted once. Every trigger gets exactly one reply, every plain message is indexed.
/// CI size: 150 triggers; `RTFM_CHAOS_FULL=1`: 1 000 (a benchmark run).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_every_trigger_gets_exactly_one_reply_and_every_message_is_indexed() {
    let full = std::env::var("RTFM_CHAOS_FULL").is_ok_and(|value| value == "1");
    let triggers: u64 = if full { 1_000 } else { 150 };
    let channels = [51u64, 52, 53, 54, 55];
    let slow = 55u64;
    let kafka = services::kafka_with_topics().await;
    let mut chroma = test_support::chroma::ChromaProcess::start();
    let collection = collection();
    let fake = FakeDiscord::start_with(FakeOptions {
        nonce_window: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    for channel in channels {
        fake.add_channel(channel, Some(3), &format!("chaos-{channel}"));
    }
    // What the answers quote: ten facts per channel, already in the index.
    let producer = Producer::new(&kafka, "test").expect("producer");
    let facts: Vec<DiscordMessage> = channels
        .iter()
        .flat_map(|channel| {
            (0..10).map(move |k| {
                message(
                    34_000_000 + channel * 100 + k,
                    *channel,
                    format!("in channel {channel} fact {k} is {}", k * 11),
                )
            })
        })
        .collect();
    for result in join_all(facts.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let (mut processor, _) = processor(&kafka, &chroma.url(), &collection, &[]);
    let store = store(&chroma.url(), &collection).await;
    eventually(WAIT, "the facts indexed", || async {
        (store.count().await.ok()? >= facts.len()).then_some(())
    })
    .await;
    let mut bot = bot(&kafka, &fake);
    eventually(WAIT, "bot connected", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    fake.fail_every(20, fake_discord::Failure::CreatedThen(502));
    fake.limit_channel(slow, 2.0);

    // The conversation goes on whatever happens to the services.
    let started = Instant::now();
    let pusher = {
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut pushed = Vec::new();
            for i in 0..triggers {
                let channel = channels[(i % 5) as usize];
                // Snowflakes, as Discord's: ordered in time with the bot's own replies.
                let plain = fake.next_message_id();
                let trigger = fake.next_message_id();
                fake.push_message(live(
                    plain,
                    channel,
                    900 + i % 50,
                    &format!("chatter {i} in channel {channel}"),
                ));
                fake.push_message(live(
                    trigger,
                    channel,
                    900 + i % 50,
                    &format!("rtfm what is fact {} in channel {channel}?", i % 10),
                ));
                pushed.push((trigger, plain, channel, Instant::now()));
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            pushed
        })
    };
    let replies = |fake: &FakeDiscord| fake.attempts().iter().filter_map(|p| p.answers()).count();
    // Right after a SIGKILL of the bot: how many replies it had posted whose responses its
    // group had not committed yet (the work a restart must recognise, not post again).
    let posted_not_committed = || async {
        let committed = rtfm_core::kafka::group::committed_offsets(
            &kafka,
            rtfm_core::topics::GROUP_RESPONSE_SENDER,
            TopicKind::BotResponses,
        )
        .await
        .unwrap_or_default();
        let responses = rtfm_core::kafka::dead_letters::read_records::<BotResponse>(
            &kafka,
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_default();
        let answered: BTreeSet<u64> = fake.attempts().iter().filter_map(|p| p.answers()).collect();
        responses
            .iter()
            .filter(|(partition, offset, response)| {
                *offset >= committed.get(partition).copied().unwrap_or(0)
                    && answered.contains(&response.original_message_id.get())
            })
            .count()
    };
    let mut bot_kills_in_flight = Vec::new();
    let mut kills = Vec::new();
    let pause = |seconds: f64| tokio::time::sleep(Duration::from_secs_f64(seconds));
    let step = Duration::from_secs_f64(triggers as f64 * 0.12 / 8.0);
    for round in 0..7 {
        tokio::time::sleep(step).await;
        match round {
            0 | 3 | 5 => {
                kills.push(("bot", replies(&fake)));
                bot.kill_9();
                bot_kills_in_flight.push(posted_not_committed().await);
                pause(1.5).await; // triggers arrive while it is down
                bot.restart();
            }
            1 | 4 => {
                kills.push(("processor", replies(&fake)));
                processor.kill_9();
                processor.restart();
            }
            _ => {
                kills.push(("chroma", replies(&fake)));
                chroma.stop();
                pause(3.0).await;
                chroma.resume();
            }
        }
    }
    let pushed = pusher.await.expect("the pusher");
    fake.unlimit_channel(slow);
    let trigger_ids: BTreeSet<u64> = pushed.iter().map(|(trigger, ..)| *trigger).collect();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let answered: BTreeSet<u64> = fake
            .attempts()
            .iter()
            .filter_map(|p| p.answers())
            .filter(|id| trigger_ids.contains(id))
            .collect();
        if answered.len() == trigger_ids.len() {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = trigger_ids.difference(&answered).collect();
            let queries: Vec<rtfm_core::BotQuery> = rtfm_core::kafka::dead_letters::read_records::<
                rtfm_core::BotQuery,
            >(&kafka, Duration::from_secs(20))
            .await
            .map(|records| records.into_iter().map(|(_, _, q)| q).collect())
            .unwrap_or_default();
            let asked: BTreeSet<u64> = queries
                .iter()
                .map(|q| q.original_message_id.get())
                .collect();
            let unasked: Vec<_> = missing.iter().filter(|id| !asked.contains(id)).collect();
            panic!(
                "{} triggers without a reply: {missing:?}; never asked: {unasked:?}; kills: {kills:?}\nbot log (end): {}",
                missing.len(),
                bot.log_text().lines().rev().take(60).collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Barrier: the bot's group has committed past every response, so it will post nothing more.
    until_bot_passed_every_response(&kafka, triggers).await;

    let attempts = fake.attempts();
    assert!(
        attempts.iter().all(|post| !post.deduplicated),
        "the nonce window is 0: nothing may lean on it"
    );
    let mut per_trigger = std::collections::BTreeMap::<u64, usize>::new();
    for post in &attempts {
        if let Some(id) = post.answers().filter(|id| trigger_ids.contains(id)) {
            *per_trigger.entry(id).or_default() += 1;
        }
    }
    // The kills are guarded: at least one bot kill left replies posted but not committed, so
    // the restarted bot met its own earlier work and did not post it again.
    assert!(
        bot_kills_in_flight.iter().any(|n| *n > 0),
        "no bot kill landed with posted-but-uncommitted replies: {bot_kills_in_flight:?}"
    );
    let doubled: Vec<_> = per_trigger.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "answered twice: {doubled:?}");
    assert_eq!(per_trigger.len() as u64, triggers, "none missing");
    let plain: Vec<rtfm_core::ids::MessageId> = pushed
        .iter()
        .map(|(_, plain, ..)| (*plain).into())
        .collect();
    let indexed = eventually(WAIT, "every plain message indexed", || async {
        let found = store.get(&Filter::All, &plain, None).await.ok()?;
        (found.len() == plain.len()).then_some(found.len())
    })
    .await;

    // Latency per channel: trigger pushed → its reply received by the fake.
    let mut report = Vec::new();
    for channel in channels {
        let mut latencies: Vec<f64> = pushed
            .iter()
            .filter(|(_, _, c, _)| *c == channel)
            .filter_map(|(trigger, _, _, at)| {
                attempts
                    .iter()
                    .find(|p| p.answers() == Some(*trigger))
                    .map(|p| p.at.duration_since(*at).as_secs_f64())
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        report.push(format!(
            "channel {channel}{}: p50 {:.1} s, p99 {:.1} s",
            if channel == slow {
                " (rate-limited)"
            } else {
                ""
            },
            pick(0.5),
            pick(0.99)
        ));
    }
    println!(
        "chaos: {triggers} triggers, {indexed} plain messages indexed, {} message-creating calls, kills (service, replies by then): {kills:?}, replies posted but not committed at each bot kill: {bot_kills_in_flight:?}, {:.0} s; {}",
        attempts.len(),
        started.elapsed().as_secs_f64(),
        report.join("; ")
    );
    let _ = store.drop_collection().await;
}
