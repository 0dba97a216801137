//! The whole system under faults, with real processes: SIGKILL of the processor while messages
//! stream in, SIGKILL of the processor and of the bot while questions are in flight, and a
//! Kafka broker restart. Each test prints its figures.
//!
//! Sizes: CI runs 2 000 messages / 200 triggers; `RTFM_FAULT_FULL=1` runs the issue's full
//! 10 000 messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use processor::store::{ChromaStore, Filter, StoreConfig, VectorStore};
use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::{BotResponse, DiscordMessage, MessageEvent, TopicKind};
use serde_json::{json, Map};
use test_support::fake_discord::{self, FakeDiscord, FakeOptions};
use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
use test_support::services::PrivateKafka;
use test_support::topic::TopicReader;
use test_support::{eventually, http_get, metric_value, services};

const WAIT: Duration = Duration::from_secs(300);

fn collection() -> String {
    format!("fault_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn store(chroma: &str, collection: &str) -> ChromaStore {
    ChromaStore::connect(&StoreConfig::new(chroma, collection))
        .await
        .expect("chroma reachable")
}

fn message(id: u64, channel: u64, text: String) -> DiscordMessage {
    DiscordMessage {
        message_id: id.to_string(),
        content: text,
        username: format!("user{}", id % 9),
        user_id: (500 + id % 9).to_string(),
        channel_id: channel.to_string(),
        timestamp: rtfm_core::schema::now_timestamp(),
        metadata: Map::from_iter([("channel_name".to_string(), json!("faults"))]),
        guild_id: Some("3".into()),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

fn processor(
    kafka: &KafkaConfig,
    chroma: &str,
    collection: &str,
    extra: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let mut env = vec![("LLM_PROVIDER", "extractive")];
    env.extend_from_slice(extra);
    spawn_processor(kafka, chroma, collection, &env)
}

fn bot(kafka: &KafkaConfig, fake: &FakeDiscord) -> ServiceProcess {
    let settings = [
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("RESPONSE_TIMEOUT_SECS", "600"),
    ];
    spawn_bot(kafka, &fake.base_url(), "fault-token", &settings).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processor_killed_again_and_again_while_indexing_still_indexes_every_message_once() {
    let total: u64 = if std::env::var("RTFM_FAULT_FULL").is_ok() {
        10_000
    } else {
        2_000
    };
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let producer = Producer::new(&kafka, "test").expect("producer");
    let publisher = {
        let producer = producer.clone();
        tokio::spawn(async move {
            // Stream the messages in over ~10 s.
            let messages: Vec<DiscordMessage> = (0..total)
                .map(|i| {
                    message(
                        30_000_000 + i,
                        40 + i % 6,
                        format!("streamed message {i} about topic {}", i % 31),
                    )
                })
                .collect();
            for chunk in messages.chunks((total / 20) as usize) {
                for result in join_all(chunk.iter().map(|m| producer.send(m))).await {
                    result.expect("acked");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let (mut process, _) = processor(&kafka, &chroma, &collection, &[("INGEST_BATCH_SIZE", "32")]);
    let store = store(&chroma, &collection).await;
    let started = Instant::now();
    let mut kills = 0;
    // Each round: wait until the (re)started processor is indexing — a fixed 2 s period would
    // mostly kill it while it is still loading its model — let it work for 0.2–1.5 s, SIGKILL
    // it. After the kill nothing moves, so messages upserted to Chroma but not committed in
    // Kafka prove the kill landed with a batch in flight.
    let mut mid_batch_kills = 0;
    let mut in_flight_at_kills = Vec::new();
    let rounds = 10;
    for round in 0..rounds {
        let before = store.count().await.unwrap_or(0);
        eventually(WAIT, "the restarted processor indexing", || async {
            (store.count().await.ok()? > before || store.count().await.ok()? as u64 == total)
                .then_some(())
        })
        .await;
        if store.count().await.unwrap_or(0) as u64 == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 + (round * 149) % 1300)).await;
        // Aim: right after a batch lands in Chroma, before its commit (a few ms later), by
        // watching the count; a random moment mostly falls while a batch is being embedded.
        let aim = Instant::now();
        let mut seen = store.count().await.unwrap_or(0);
        while aim.elapsed() < Duration::from_secs(3) {
            let now = store.count().await.unwrap_or(0);
            if now > seen {
                break;
            }
            seen = now;
        }
        process.kill_9();
        kills += 1;
        let upserted = store.count().await.unwrap_or(0) as i64;
        let committed: i64 = rtfm_core::kafka::group::committed_offsets(
            &kafka,
            rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
            TopicKind::DiscordMessages,
        )
        .await
        .map(|offsets| offsets.values().sum())
        .unwrap_or(0);
        if upserted > committed {
            mid_batch_kills += 1;
        }
        in_flight_at_kills.push(upserted - committed);
        process.restart();
    }
    assert!(
        mid_batch_kills > 0,
        "no kill landed with work in flight (upserted − committed at each kill: {in_flight_at_kills:?}); the test proves nothing"
    );
    publisher.await.expect("publisher");
    let during = store.count().await.unwrap_or(0);
    eventually(WAIT, "every message indexed after the kills", || async {
        (store.count().await.ok()? as u64 == total).then_some(())
    })
    .await;
    let ids: BTreeSet<String> = store
        .get(&Filter::All, &[], Some(total as usize + 10))
        .await
        .expect("get")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        ids.len() as u64,
        total,
        "exactly {total} ids, no more, no fewer"
    );
    println!("fault 1: {kills} SIGKILLs while indexing ({rounds} rounds at most), {mid_batch_kills} with work in flight (upserted − committed: {in_flight_at_kills:?}); {during} of {total} indexed by then; {} ids in Chroma after recovery ({:.0} s)", ids.len(), started.elapsed().as_secs_f64());
    let _ = store.drop_collection().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_processor_and_the_bot_mid_flight_still_gives_one_reply_per_trigger() {
    let triggers: u64 = 200;
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    // Discord as strict as it gets: no nonce deduplication at all.
    let fake = FakeDiscord::start_with(FakeOptions {
        nonce_window: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    fake.add_channel(40, Some(3), "faults");
    let producer = Producer::new(&kafka, "test").expect("producer");
    let history: Vec<DiscordMessage> = (0..50)
        .map(|i| {
            message(
                31_000_000 + i,
                40,
                format!("the answer to question {i} is {}", i * 7),
            )
        })
        .collect();
    for result in join_all(history.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let (mut processor, _) = processor(&kafka, &chroma, &collection, &[]);
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "history indexed", || async {
        (store.count().await.ok()? >= 50).then_some(())
    })
    .await;
    let mut bot = bot(&kafka, &fake);
    eventually(WAIT, "bot connected", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;

    // Messages, mentions and slash commands, mixed.
    for i in 0..triggers {
        let author = fake_discord::user(700 + i % 40, "asker", false);
        let question = format!("what is the answer to question {}?", i % 50);
        match i % 3 {
            0 => fake.push_message(fake_discord::message(
                32_000_000 + i,
                40,
                Some(3),
                author,
                &format!("rtfm {question}"),
            )),
            1 => fake.push_message(fake_discord::message(
                32_000_000 + i,
                40,
                Some(3),
                author,
                &format!("<@{}> {question}", fake_discord::BOT_ID),
            )),
            _ => fake.push_interaction(fake_discord::slash_command(
                32_000_000 + i,
                40,
                3,
                author,
                &question,
            )),
        }
    }
    let answered = |fake: &FakeDiscord| -> BTreeSet<u64> {
        fake.attempts()
            .iter()
            .filter_map(|post| post.answers())
            .collect()
    };
    // Wait until some answers are out, then kill the processor mid-stream and restart it.
    eventually(WAIT, "first replies", || async {
        (answered(&fake).len() >= 20).then_some(())
    })
    .await;
    processor.kill_9();
    let after_processor_kill = answered(&fake).len();
    processor.restart();
    eventually(WAIT, "more replies", || async {
        (answered(&fake).len() >= after_processor_kill + 40).then_some(())
    })
    .await;
    bot.kill_9();
    let after_bot_kill = answered(&fake).len();
    bot.restart();
    eventually(WAIT, "all replies", || async {
        (answered(&fake).len() as u64 == triggers).then_some(())
    })
    .await;
    // Barrier instead of a sleep: once the bot's group has committed past every response, it
    // has done all it will ever do for them (it commits only after posting).
    until_bot_passed_every_response(&kafka, triggers).await;
    let attempts = fake.attempts();
    assert_eq!(answered(&fake).len() as u64, triggers, "none missing");
    assert!(
        attempts.iter().all(|post| !post.deduplicated),
        "the nonce window is 0: nothing may lean on it"
    );
    assert_eq!(
        attempts.len() as u64,
        triggers,
        "no duplicate POST: {} message-creating calls for {triggers} triggers",
        attempts.len()
    );
    let posts = attempts;
    println!("fault 2: processor SIGKILLed after {after_processor_kill} replies, bot SIGKILLed after {after_bot_kill}; {} replies for {triggers} triggers", posts.len());
    let _ = store.drop_collection().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_restart_mid_stream_loses_nothing() {
    let broker = PrivateKafka::start();
    let kafka = KafkaConfig::new(&broker.bootstrap);
    services::create_topics(&kafka).await;
    let chroma = services::chroma_url();
    let collection = collection();
    let fake = FakeDiscord::start().await;
    fake.add_channel(40, Some(3), "faults");
    let (_processor, processor_http) = processor(&kafka, &chroma, &collection, &[]);
    let _bot = bot(&kafka, &fake);
    eventually(WAIT, "bot connected", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;
    let human = |i: u64| fake_discord::user(800 + i % 5, "human", false);
    for i in 0..100 {
        fake.push_message(fake_discord::message(
            33_000_000 + i,
            40,
            Some(3),
            human(i),
            &format!("before the restart, fact {i}"),
        ));
    }
    fake.push_message(fake_discord::message(
        33_000_500,
        40,
        Some(3),
        human(0),
        "rtfm what is fact 7?",
    ));
    // The broker goes down; the rest of the conversation happens while it is down, so the
    // bot's producer must buffer it and deliver it once the broker is back.
    let stopped = Instant::now();
    broker.stop();
    assert!(
        !Producer::new(&kafka, "probe")
            .expect("producer")
            .reachable(Duration::from_secs(2))
            .await,
        "the broker is really down"
    );
    for i in 100..200 {
        fake.push_message(fake_discord::message(
            33_000_000 + i,
            40,
            Some(3),
            human(i),
            &format!("while the broker was down, fact {i}"),
        ));
    }
    fake.push_message(fake_discord::message(
        33_000_501,
        40,
        Some(3),
        human(1),
        "rtfm what is fact 150?",
    ));
    broker.resume();
    let downtime = stopped.elapsed();
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "all 200 facts indexed", || async {
        (store.count().await.ok()? == 200).then_some(())
    })
    .await;
    eventually(WAIT, "both answers", || async {
        let replied: BTreeSet<u64> = fake
            .posts()
            .iter()
            .filter_map(|post| post.reply_to())
            .collect();
        (replied.contains(&33_000_500) && replied.contains(&33_000_501)).then_some(())
    })
    .await;
    let ready = http_get(&format!("http://{processor_http}/readyz"))
        .await
        .map(|(status, _)| status);
    println!("fault 3: broker down for {:.1} s while 101 messages were sent; 200 facts indexed, 2 answers, processor /readyz {ready:?}", downtime.as_secs_f64());
    assert_eq!(fake.posts().len(), 2);
    // Once the ingest group is past every record, the two questions were read and left out
    // of the index: a question to the bot is never evidence.
    let read = services::until_group_passed_all::<DiscordMessage>(
        &kafka,
        rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
        WAIT,
    )
    .await;
    assert_eq!(read, 202, "every message reached Kafka");
    assert_eq!(store.count().await.expect("count"), 200);
    let metrics = http_get(&format!("http://{processor_http}/metrics"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    assert!(
        metric_value(
            &metrics,
            r#"rtfm_messages_ingested_total{outcome="upserted"}"#
        )
        .unwrap_or(0.0)
            >= 200.0
    );
    let _ = store.drop_collection().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_the_batch_commits_and_exits_cleanly() {
    let total: u64 = 1_500;
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection();
    let producer = Producer::new(&kafka, "test").expect("producer");
    let messages: Vec<DiscordMessage> = (0..total)
        .map(|i| message(34_000_000 + i, 40 + i % 3, format!("load message {i}")))
        .collect();
    for result in join_all(messages.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let batch = 64u64;
    let (mut first, _) = processor(&kafka, &chroma, &collection, &[("INGEST_BATCH_SIZE", "64")]);
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "ingestion under way", || async {
        (store.count().await.ok()? >= 300).then_some(())
    })
    .await;
    let asked = Instant::now();
    let status = first
        .terminate(Duration::from_secs(30))
        .expect("exits within the 30 s grace period");
    let took = asked.elapsed();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    let indexed_at_stop = store.count().await.expect("count") as u64;

    // The next incarnation starts after the committed offsets: it re-reads at most a batch.
    let (second, http) = processor(&kafka, &chroma, &collection, &[("INGEST_BATCH_SIZE", "64")]);
    eventually(WAIT, "the rest indexed", || async {
        (store.count().await.ok()? as u64 == total).then_some(())
    })
    .await;
    let metrics = http_get(&format!("http://{http}/metrics"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let reingested = metric_value(
        &metrics,
        r#"rtfm_messages_ingested_total{outcome="upserted"}"#,
    )
    .unwrap_or(0.0) as u64;
    println!("fault 7: SIGTERM → exit 0 in {:.1} s with {indexed_at_stop} of {total} indexed; the restart upserted {reingested} (≤ remaining {} + one batch)", took.as_secs_f64(), total - indexed_at_stop);
    assert!(
        reingested <= total - indexed_at_stop + batch,
        "offsets were committed at shutdown"
    );
    drop(second);
    let _ = store.drop_collection().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_started_before_its_broker_waits_for_it_and_becomes_ready() {
    // Compose starts the processor once the broker is healthy, but a broker can be slow to
    // serve transactions, and outside compose nothing orders the start at all.
    let broker = PrivateKafka::start();
    let kafka = KafkaConfig::new(&broker.bootstrap);
    services::create_topics(&kafka).await;
    broker.stop();
    let collection = collection();
    let (mut processor, http) = processor(&kafka, &services::chroma_url(), &collection, &[]);
    eventually(WAIT, "the processor to wait for Kafka", || async {
        processor
            .log_text()
            .contains("waiting for Kafka")
            .then_some(())
    })
    .await;
    assert!(
        processor.is_running(),
        "the processor gave up on the broker"
    );
    let (status, reasons) = http_get(&format!("http://{http}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(status, 503, "{reasons}");
    broker.resume();
    eventually(
        WAIT,
        "the processor ready once the broker is back",
        || async { (http_get(&format!("http://{http}/readyz")).await?.0 == 200).then_some(()) },
    )
    .await;
    let _ = store(&services::chroma_url(), &collection)
        .await
        .drop_collection()
        .await;
}

/// Waits until `bot-responses` holds a response to each of `triggers` questions and the bot's
/// group has committed past all of them: it has done all it will ever do for them (it commits
/// only after posting).
async fn until_bot_passed_every_response(kafka: &KafkaConfig, triggers: u64) {
    let mut responses: TopicReader<BotResponse> = TopicReader::new(kafka);
    responses
        .until("a response per trigger", WAIT, |seen| {
            seen.iter()
                .map(|r| r.record.original_message_id.as_str())
                .collect::<BTreeSet<_>>()
                .len() as u64
                >= triggers
        })
        .await;
    services::until_group_passed(
        kafka,
        rtfm_core::topics::GROUP_RESPONSE_SENDER,
        TopicKind::BotResponses,
        &responses.positions(),
        WAIT,
    )
    .await;
}

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
                    && response
                        .original_message_id
                        .parse()
                        .is_ok_and(|id: u64| answered.contains(&id))
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
                .filter_map(|q| q.original_message_id.parse().ok())
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
    let plain: Vec<String> = pushed
        .iter()
        .map(|(_, plain, ..)| plain.to_string())
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
