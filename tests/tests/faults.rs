//! The whole system under faults, with real processes: SIGKILL of the processor while messages
//! stream in, SIGKILL of the processor and of the bot while questions are in flight, and a
//! Kafka broker restart. Each test prints its figures.
//!
//! Sizes: CI runs 2 000 messages / 200 triggers; `RTFM_FAULT_FULL=1` runs the issue's full
//! 10 000 messages.

mod common;

use common::*;

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
    let ids: BTreeSet<_> = store
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
