//! Mixed deployments: the seed's Python services beside ours, one replaced at a time. The
//! seed's side is `tests/seed_clients/seed_client.py` — records shaped as the seed's bot.py
//! shapes them (no `guild_id`, naive `isoformat()` timestamps, key = message id, gzip), read and
//! written with kafka-python as the seed configures it — run with kafka-python 2.0.2 (the seed's
//! pin) and 3.x, installed by `scripts/seed_clients.sh`.
//!
//! - The seed's bot with our processor: its messages are indexed, its question answered, and
//!   it reads the answer (gzip, the default codec, needs no extra library). kafka-python 2.0.2
//!   cannot read a transactional topic; with `RESPONSES_TRANSACTIONAL=false` it can.
//! - The seed's processor with our bot: it reads what our producers write, and our bot reads
//!   the answers it writes.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage};
use serde_json::{Map, Value};
use test_support::process::{spawn_processor, ServiceProcess};
use test_support::topic::TopicReader;
use test_support::{eventually, http_get, services};

const WAIT: Duration = Duration::from_secs(120);
const CHANNEL: &str = "7001";

/// One of the seed's client versions.
#[derive(Clone, Copy)]
enum KafkaPython {
    Pinned,
    Current,
}

impl KafkaPython {
    fn version(self) -> &'static str {
        match self {
            KafkaPython::Pinned => "2.0.2",
            KafkaPython::Current => "3.0.12",
        }
    }

    fn dir(self) -> PathBuf {
        let cache = std::env::var("RTFM_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rtfm")
            });
        let dir = cache.join(format!("seed-clients/kafka-python-{}", self.version()));
        assert!(
            dir.join(".complete").exists(),
            "kafka-python {} is not installed in {}: run scripts/seed_clients.sh (scripts/test.sh does)",
            self.version(),
            dir.display()
        );
        dir
    }

    /// Runs `seed_client.py` with this version → (success, stdout, stderr).
    fn run(self, kafka: &KafkaConfig, args: &[&str]) -> (bool, String, String) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seed_clients/seed_client.py");
        let output = Command::new("python3")
            .arg(script)
            .arg(&kafka.bootstrap_servers)
            .arg(&kafka.topic_suffix)
            .args(args)
            .env("PYTHONPATH", self.dir())
            .output()
            .expect("python3 runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }

    fn run_ok(self, kafka: &KafkaConfig, args: &[&str]) -> String {
        let (ok, out, err) = self.run(kafka, args);
        assert!(
            ok,
            "kafka-python {} {args:?} failed:\n{out}\n{err}",
            self.version()
        );
        out
    }
}

fn collection() -> String {
    format!("seed_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Our processor (extractive answers), waited for until ready.
async fn processor(kafka: &KafkaConfig, extra: &[(&str, &str)]) -> ServiceProcess {
    let mut env = vec![("LLM_PROVIDER", "extractive")];
    env.extend_from_slice(extra);
    let (process, http) = spawn_processor(kafka, &services::chroma_url(), &collection(), &env);
    let readyz = format!("http://{http}/readyz");
    eventually(WAIT, "processor /readyz", || async {
        (http_get(&readyz).await?.0 == 200).then_some(())
    })
    .await;
    process
}

/// The seed's bot asks our processor; the answer it reads back (or its client's error).
async fn seed_bot_asks(kafka: &KafkaConfig, client: KafkaPython) -> (bool, String, String) {
    client.run_ok(
        kafka,
        &[
            "produce-messages",
            CHANNEL,
            "lunch is at noon today",
            "the build cache lives in /var/cache/ci and is wiped on sunday",
            "anyone seen the new logo?",
        ],
    );
    // Indexing and answering are separate consumers: ask once the facts can be found.
    let mut answer = (false, String::new(), String::new());
    for _ in 0..20 {
        let query = client.run_ok(
            kafka,
            &["produce-query", CHANNEL, "where does the build cache live?"],
        );
        answer = client.run(kafka, &["consume-response", query.trim(), "30"]);
        if !answer.0 || answer.1.contains("/var/cache/ci") {
            return answer;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_bot_on_current_kafka_python_is_answered_by_our_processor() {
    let kafka = services::kafka_with_topics().await;
    let _processor = processor(&kafka, &[]).await;
    let (ok, out, err) = seed_bot_asks(&kafka, KafkaPython::Current).await;
    assert!(ok, "{err}");
    let response: Value = serde_json::from_str(out.trim()).expect("a JSON response");
    let text = response["response_text"].as_str().unwrap_or_default();
    assert!(text.contains("/var/cache/ci"), "{response}");
    assert!(response["metadata"]["sources_count"].as_u64() >= Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_pinned_kafka_python_cannot_read_transactional_answers() {
    let kafka = services::kafka_with_topics().await;
    let _processor = processor(&kafka, &[]).await;
    let client = KafkaPython::Pinned;
    // Two answers, each committed (a committed transaction ends with its marker); then the
    // seed's bot looks for the second: it must read past the first one's marker.
    let mut committed = TopicReader::<BotResponse>::new(&kafka);
    let mut last_query = String::new();
    for question in [
        "where does the build cache live?",
        "who wipes the build cache?",
    ] {
        last_query = client
            .run_ok(&kafka, &["produce-query", CHANNEL, question])
            .trim()
            .to_string();
        let expected = last_query.clone();
        committed
            .until("the answer, committed", WAIT, |seen| {
                seen.iter()
                    .any(|received| received.record.query_id == expected)
            })
            .await;
    }
    let (ok, out, err) = client.run(&kafka, &["consume-response", &last_query, "30"]);
    assert!(
        !ok,
        "kafka-python 2.0.2 read a transactional topic after all (then RESPONSES_TRANSACTIONAL=false is not needed): {out}"
    );
    // It hands the transaction marker to the JSON deserializer.
    assert!(
        err.contains("kafka-python 2.0.2") && err.contains("JSONDecodeError"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_pinned_kafka_python_reads_answers_written_without_transactions() {
    let kafka = services::kafka_with_topics().await;
    let _processor = processor(&kafka, &[("RESPONSES_TRANSACTIONAL", "false")]).await;
    let (ok, out, err) = seed_bot_asks(&kafka, KafkaPython::Pinned).await;
    assert!(ok, "{err}");
    assert!(out.contains("/var/cache/ci"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_processor_reads_what_our_bot_writes_and_our_bot_reads_its_answers() {
    let kafka = services::kafka_with_topics().await;
    let producer = Producer::new(&kafka, "bot").expect("producer");
    let message = DiscordMessage {
        message_id: 9100000000000000001.into(),
        content: "the deploy key rotates monthly".into(),
        username: "ann".into(),
        user_id: 42.into(),
        channel_id: CHANNEL.parse().expect("an id"),
        timestamp: now_timestamp(),
        metadata: Map::new(),
        guild_id: Some(10.into()),
        ..DiscordMessage::default()
    };
    let query = BotQuery {
        query_id: rtfm_core::ids::QueryId::random(),
        original_message_id: 9100000000000000002.into(),
        question: "when does the deploy key rotate?".into(),
        username: "bob".into(),
        user_id: 43.into(),
        channel_id: CHANNEL.parse().expect("an id"),
        timestamp: now_timestamp(),
        ..BotQuery::default()
    };
    producer.send(&message).await.expect("acked");
    producer.send(&query).await.expect("acked");
    for client in [KafkaPython::Pinned, KafkaPython::Current] {
        let messages = client.run_ok(&kafka, &["consume", "discord-messages", "1", "60"]);
        let read: Value = serde_json::from_str(messages.trim()).expect("JSON");
        assert_eq!(read["content"], "the deploy key rotates monthly");
        let queries = client.run_ok(&kafka, &["consume", "bot-queries", "1", "60"]);
        let read: Value = serde_json::from_str(queries.trim()).expect("JSON");
        assert_eq!(read["query_id"], query.query_id.as_str());
    }
    // The seed's processor answers; our bot's consumer decodes it.
    let mut responses = TopicReader::<BotResponse>::new(&kafka);
    KafkaPython::Pinned.run_ok(
        &kafka,
        &[
            "produce-response",
            query.query_id.as_str(),
            &query.original_message_id.to_string(),
            CHANNEL,
            "Monthly, says ann.",
        ],
    );
    let response = responses.next(WAIT).await;
    assert_eq!(response.query_id, query.query_id);
    assert_eq!(response.response_text, "Monthly, says ann.");
}
