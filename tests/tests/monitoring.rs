//! The operator's monitoring commands for the local set-up (docs/operations.md, "Monitoring"):
//! `scripts/kafka.sh topics|groups|consume` run Kafka's own tools against the real broker and
//! show the topics, a consumer group's lag and a dead-letter record with its headers.

use std::path::PathBuf;
use std::process::{Command, Output};

use std::time::Duration;

use rtfm_core::kafka::dlq_headers::ORIGIN_TOPIC;
use rtfm_core::kafka::{Consumer, ConsumerOptions, Producer};
use rtfm_core::schema::now_timestamp;
use rtfm_core::{DiscordMessage, TopicKind};
use serde_json::Map;
use test_support::services;
use tokio_util::sync::CancellationToken;

fn kafka_sh(bootstrap: &str, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(script)
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .output()
        .expect("scripts/kafka.sh runs");
    let stdout = String::from_utf8_lossy(&stdout).to_string();
    assert!(
        status.success(),
        "scripts/kafka.sh {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

fn message(id: u64) -> DiscordMessage {
    DiscordMessage {
        message_id: id.into(),
        content: format!("message {id}"),
        username: "ann".into(),
        user_id: 42.into(),
        channel_id: 20.into(),
        timestamp: now_timestamp(),
        metadata: Map::new(),
        ..DiscordMessage::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_groups_and_dead_letters_can_be_inspected_with_kafkas_own_tools() {
    let kafka = services::kafka_with_topics().await;
    let topic = kafka.topics().name(TopicKind::DiscordMessages);
    let producer = Producer::new(&kafka, "test").expect("producer");
    for id in 1..=3 {
        producer.send(&message(id)).await.expect("acked");
    }
    producer
        .send_raw(&topic, Some("bad"), b"this is not json", None)
        .await
        .expect("acked");
    let consumer: Consumer<DiscordMessage> = Consumer::new(
        &kafka,
        &ConsumerOptions::new("monitoring", "monitoring"),
        producer.clone(),
    )
    .expect("consumer");
    // Every valid record read (the bad one dead-lettered on the way), one committed: the
    // group lags by the others.
    let shutdown = CancellationToken::new();
    let mut received = Vec::new();
    while received.len() < 3 {
        let record = tokio::time::timeout(Duration::from_secs(60), consumer.recv(&shutdown))
            .await
            .expect("records arrive")
            .expect("no fatal error")
            .expect("not shut down");
        received.push(record);
    }
    consumer.store(&received[0]);
    consumer.commit().await.expect("committed");
    services::until_dead_lettered(
        &kafka,
        TopicKind::DiscordMessages,
        1,
        Duration::from_secs(60),
    )
    .await;

    let topics = kafka_sh(&kafka.bootstrap_servers, &["topics", "--list"]);
    assert!(topics.lines().any(|line| line == topic), "{topics}");
    let dead_letter_topic = kafka.topics().dead_letter(TopicKind::DiscordMessages);
    assert!(
        topics.lines().any(|line| line == dead_letter_topic),
        "{topics}"
    );
    let described = kafka_sh(
        &kafka.bootstrap_servers,
        &["topics", "--describe", "--topic", &topic],
    );
    assert!(described.contains("PartitionCount: 3"), "{described}");

    let group = kafka.topics().group("monitoring");
    let groups = kafka_sh(
        &kafka.bootstrap_servers,
        &["groups", "--describe", "--group", &group],
    );
    assert!(
        groups.contains("LAG") && groups.contains(&topic),
        "{groups}"
    );

    let dead = kafka_sh(
        &kafka.bootstrap_servers,
        &["consume", &dead_letter_topic, "--timeout-ms", "5000"],
    );
    assert!(dead.contains("this is not json"), "{dead}");
    assert!(dead.contains(&format!("{ORIGIN_TOPIC}:{topic}")), "{dead}");
}
