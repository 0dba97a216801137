//! The processor under failure: killed with SIGKILL mid-query, Chroma down mid-ingestion, and
//! two instances sharing the work. The processor runs as a real process where it gets killed.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use processor::store::VectorStore;
use rtfm_core::kafka::{KafkaConfig, Producer};
use test_support::chroma::ChromaProcess;
use test_support::fake_model::{Behaviour, FakeModel};
use test_support::{eventually, free_port, http_get, metric_value, services};

/// The `processor` binary as a child process, logging to a file (printed if a test fails).
struct ProcessorProcess {
    child: Child,
    pub http_port: u16,
    log: PathBuf,
}

impl ProcessorProcess {
    fn spawn(
        kafka: &KafkaConfig,
        chroma_url: &str,
        collection: &str,
        instance: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let http_port = free_port();
        let log = std::env::temp_dir().join(format!("rtfm-processor-{}.log", uuid::Uuid::new_v4()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_processor"));
        command
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka.bootstrap_servers)
            .env("KAFKA_TOPIC_SUFFIX", &kafka.topic_suffix)
            .env("CHROMA_URL", chroma_url)
            .env("CHROMA_COLLECTION", collection)
            .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("PROCESSOR_INSTANCE_ID", instance)
            .env("INGEST_BATCH_LINGER_MS", "50")
            .env("RUST_LOG", "info")
            .env_remove("GEMINI_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("processor binary starts");
        Self {
            child,
            http_port,
            log,
        }
    }

    fn kill_9(&mut self) {
        // std's kill() is SIGKILL on Unix: no destructor, no flush, no abort of transactions.
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    async fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.http_port))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProcessorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- processor log {} ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processor_killed_mid_query_still_yields_exactly_one_response() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection_name();
    let fake = FakeModel::start().await;
    // The first call hangs, so the process is killed with the query consumed but uncommitted.
    fake.then(Behaviour::Stall(Duration::from_secs(120)));
    fake.always(Behaviour::Answer("Use vaultctl [2].".into()));
    let producer = Producer::new(&kafka, "test").expect("producer");
    publish(
        &producer,
        &[
            message(
                8_000_001,
                Some("1"),
                "11",
                "how do I rotate the deploy key?",
                0,
            ),
            message(
                8_000_002,
                Some("1"),
                "11",
                "vaultctl rotate --key deploy",
                1,
            ),
        ],
    )
    .await;
    let base = fake.gemini_base_url();
    let env = [
        ("GEMINI_API_KEY", "test-key"),
        ("GEMINI_BASE_URL", base.as_str()),
        ("LLM_TIMEOUT_SECS", "300"),
    ];
    let mut first = ProcessorProcess::spawn(&kafka, &chroma, &collection, "kill-test", &env);
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "indexed", || async {
        (store.count().await.ok()? == 2).then_some(())
    })
    .await;
    let question = query(8_100_001, Some("1"), "11", "rotate the deploy key?");
    producer.send(&question).await.expect("acked");
    eventually(WAIT, "the model call in flight", || async {
        (!fake.requests().is_empty()).then_some(())
    })
    .await;
    first.kill_9();

    // Same instance id → same transactional id: the restart fences whatever the first left.
    let _second = ProcessorProcess::spawn(&kafka, &chroma, &collection, "kill-test", &env);
    let mut reader = ResponseReader::new(&kafka);
    reader
        .until("the response after the restart", |seen| !seen.is_empty())
        .await;
    reader.drain(Duration::from_secs(8)).await;
    let responses = reader.for_query(question.query_id.as_str());
    assert_eq!(responses.len(), 1, "exactly one response: {responses:#?}");
    assert!(responses[0].response_text.starts_with("Use vaultctl [2]."));
    assert_eq!(
        fake.requests().len(),
        2,
        "the query was processed again after the kill"
    );
    store.drop_collection().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chroma_down_for_thirty_seconds_pauses_ingestion_and_loses_nothing() {
    let kafka = services::kafka_with_topics().await;
    let mut chroma = ChromaProcess::start();
    let collection = collection_name();
    let producer = Producer::new(&kafka, "test").expect("producer");
    let total = 2_000u64;
    let messages: Vec<_> = (0..total)
        .map(|i| {
            message(
                9_000_000 + i,
                Some("5"),
                &format!("{}", 50 + i % 5),
                &format!(
                    "note {i}: the build of module {} failed with error {}",
                    i % 17,
                    i % 29
                ),
                (i % 900) as u32,
            )
        })
        .collect();
    publish(&producer, &messages).await;
    let http_port = free_port();
    let http = format!("127.0.0.1:{http_port}");
    let running = run_in_process(config(
        &kafka,
        &chroma.url(),
        &collection,
        &["--http-addr", &http, "--ingest-max-backoff-secs", "2"],
    ));
    let store = store(&chroma.url(), &collection).await;
    eventually(WAIT, "ingestion under way", || async {
        (store.count().await.ok()? >= 200).then_some(())
    })
    .await;

    chroma.stop();
    let readyz = format!("http://{http}/readyz");
    eventually(
        Duration::from_secs(30),
        "/readyz to report chroma not ready",
        || async {
            let (status, body) = http_get(&readyz).await?;
            (status == 503 && body.contains("chroma: not ready")).then_some(())
        },
    )
    .await;
    // And says what it holds and why, on /readyz and /metrics.
    eventually(
        Duration::from_secs(60),
        "/readyz and /metrics to show the held batch",
        || async {
            let (_, body) = http_get(&readyz).await?;
            let (_, metrics) = http_get(&format!("http://{http}/metrics")).await?;
            let held = test_support::metric_value(
                &metrics,
                r#"rtfm_ingest_held_records{waiting_for="chroma"}"#,
            )?;
            (body.contains("ingest: not ready (holding ")
                && body.contains("waiting for chroma")
                && held > 0.0)
                .then_some(())
        },
    )
    .await;
    // A question during the outage gets a clear degraded answer, not silence.
    let question = query(
        9_900_001,
        Some("5"),
        "50",
        "why did the build of module 3 fail?",
    );
    producer.send(&question).await.expect("acked");
    let mut reader = ResponseReader::new(&kafka);
    reader
        .until("the degraded answer", |seen| !seen.is_empty())
        .await;
    assert!(reader.seen[0].metadata.degraded);
    assert!(
        reader.seen[0]
            .response_text
            .contains("can't search the chat history right now"),
        "{}",
        reader.seen[0].response_text
    );
    // About 30 s of outage in all.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(!running.is_finished(), "the processor survives the outage");
    chroma.resume();

    eventually(
        Duration::from_secs(180),
        "all 2000 messages after the outage",
        || async { (store.count().await.ok()? == total as usize).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(30), "/readyz ready again", || async {
        let (status, _) = http_get(&readyz).await?;
        (status == 200).then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processors_in_one_group_share_the_partitions() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection_name();
    let first = ProcessorProcess::spawn(&kafka, &chroma, &collection, "share-a", &[]);
    let second = ProcessorProcess::spawn(&kafka, &chroma, &collection, "share-b", &[]);
    let producer = Producer::new(&kafka, "test").expect("producer");
    let messages: Vec<_> = (0..300u64)
        .map(|i| {
            message(
                9_500_000 + i,
                Some("6"),
                &format!("{}", 60 + i % 30),
                &format!("shared work item {i}"),
                (i % 300) as u32,
            )
        })
        .collect();
    publish(&producer, &messages).await;
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "all 300 indexed", || async {
        (store.count().await.ok()? == 300).then_some(())
    })
    .await;
    let sample = r#"rtfm_assigned_partitions{group="discord-message-processor"}"#;
    let (a, b) = eventually(WAIT, "both instances to own partitions", || async {
        let a = metric_value(&first.metrics().await, sample)?;
        let b = metric_value(&second.metrics().await, sample)?;
        (a >= 1.0 && b >= 1.0 && a + b == 3.0).then_some((a, b))
    })
    .await;
    assert_eq!(a + b, 3.0);
    // A batch is counted once it is written and checked again against the community's
    // choices (which can take a moment after Chroma already holds it).
    let ingested = r#"rtfm_messages_ingested_total{outcome="upserted"}"#;
    eventually(
        WAIT,
        "together they counted everything they indexed",
        || async {
            let a = metric_value(&first.metrics().await, ingested).unwrap_or(0.0);
            let b = metric_value(&second.metrics().await, ingested).unwrap_or(0.0);
            (a + b >= 300.0).then_some(())
        },
    )
    .await;
    store.drop_collection().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_chroma_rejects_for_good_are_dead_lettered_with_the_reason() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = collection_name();
    // A collection that already holds 3-dimensional vectors rejects our 384-d ones (HTTP 4xx).
    let store = store(&chroma, &collection).await;
    store
        .upsert(
            &[processor::store::StoredMessage {
                id: 1.into(),
                document: "tiny".into(),
                metadata: serde_json::Map::new(),
            }],
            &[vec![0.1, 0.2, 0.3]],
        )
        .await
        .expect("seed vector");
    let producer = Producer::new(&kafka, "test").expect("producer");
    let messages: Vec<_> = (0..5u64)
        .map(|i| {
            message(
                9_800_000 + i,
                Some("8"),
                "80",
                &format!("rejected {i}"),
                i as u32,
            )
        })
        .collect();
    publish(&producer, &messages).await;
    let process = ProcessorProcess::spawn(&kafka, &chroma, &collection, "reject", &[]);
    let sample = format!(
        "rtfm_dead_lettered_total{{topic=\"discord-messages{}\"}}",
        kafka.topic_suffix
    );
    eventually(WAIT, "5 dead letters", || async {
        (metric_value(&process.metrics().await, &sample)? == 5.0).then_some(())
    })
    .await;
    let log = process.log_text();
    assert!(log.contains("Chroma rejected"), "the reason is logged");
    assert_eq!(
        store.count().await.expect("count"),
        1,
        "nothing half-written"
    );
    store.drop_collection().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_chroma_refuses_is_retried_until_done_never_dropped_or_dead_lettered() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let proxy = test_support::chroma_proxy::ChromaProxy::start(&chroma).await;
    let collection = collection_name();
    let producer = Producer::new(&kafka, "test").expect("producer");
    let messages: Vec<_> = (0..3u64)
        .map(|i| {
            message(
                9_900_000 + i,
                Some("9"),
                "90",
                &format!("kept or deleted {i}"),
                1,
            )
        })
        .collect();
    publish(&producer, &messages).await;
    let http = format!("127.0.0.1:{}", free_port());
    let running = run_in_process(config(
        &kafka,
        &proxy.url(),
        &collection,
        &["--http-addr", &http, "--ingest-max-backoff-secs", "1"],
    ));
    let store = store(&chroma, &collection).await;
    eventually(WAIT, "three messages indexed", || async {
        (store.count().await.ok()? == 3).then_some(())
    })
    .await;

    proxy.refuse_deletes(true);
    let deletions: Vec<_> = messages[..2]
        .iter()
        .map(|message| {
            let mut deletion = message.clone();
            deletion.event = rtfm_core::MessageEvent::Delete;
            deletion.content = String::new();
            deletion
        })
        .collect();
    publish(&producer, &deletions).await;
    eventually(WAIT, "the delete refused, and asked again", || async {
        (proxy.refused() >= 3).then_some(())
    })
    .await;
    let (status, body) = http_get(&format!("http://{http}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("refuses to delete"), "{body}");
    assert_eq!(store.count().await.expect("count"), 3, "not deleted yet");

    proxy.refuse_deletes(false);
    eventually(
        WAIT,
        "the deletes done once Chroma accepts them",
        || async { (store.count().await.ok()? == 1).then_some(()) },
    )
    .await;
    let dead = rtfm_core::kafka::dead_letters::read_all(
        &kafka,
        rtfm_core::TopicKind::DiscordMessages,
        Duration::from_secs(10),
    )
    .await
    .expect("read the dead-letter topic");
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());
    running.stop().await;
    store.drop_collection().await.expect("cleanup");
}
