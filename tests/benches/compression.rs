//! What each `KAFKA_COMPRESSION` costs: prints one table. For every codec, the same messages
//! (the public IRC corpus as the bot publishes them) are produced to a private topic on the
//! real broker, one awaited send at a time as the bot sends them and then as a burst (a
//! backfill); the table gives messages per second for both and the bytes the broker stored per
//! message (the partition log files, read from the broker's data directory).
//!
//!   cargo bench -p rtfm-tests --bench compression [-- --messages N]
//!
//! Needs the real broker started by `scripts/kafka.sh start` (its data directory is read from
//! `$RTFM_RUN_DIR/kafka/data`).

use std::path::PathBuf;
use std::time::Instant;

use futures::future::join_all;
use rtfm_core::kafka::admin::Admin;
use rtfm_core::kafka::{Compression, KafkaConfig, Producer};
use rtfm_core::schema::now_timestamp;
use rtfm_core::topics::TopicKind;
use rtfm_core::DiscordMessage;
use serde_json::{json, Map};
use test_support::services;

fn message(i: usize, text: &str) -> DiscordMessage {
    DiscordMessage {
        message_id: (70_000_000 + i as u64).into(),
        content: text.to_string(),
        username: format!("user{}", i % 40),
        user_id: (9_000 + i as u64 % 40).into(),
        channel_id: (100 + i as u64 % 3).into(),
        timestamp: now_timestamp(),
        metadata: Map::from_iter([("channel_name".to_string(), json!("ubuntu"))]),
        guild_id: Some(10.into()),
        ..DiscordMessage::default()
    }
}

/// Bytes of the partition logs of `topic` in the broker's data directory.
fn stored_bytes(topic: &str) -> u64 {
    let run_dir = std::env::var("RTFM_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.rtfm/run")));
    let data = run_dir.join("kafka/data");
    let mut total = 0;
    for entry in std::fs::read_dir(&data)
        .unwrap_or_else(|err| panic!("{}: {err}", data.display()))
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(partition) = name.strip_prefix(&format!("{topic}-")) else {
            continue;
        };
        if partition.parse::<u32>().is_err() {
            continue;
        }
        for file in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|ext| ext == "log") {
                total += file.metadata().map(|meta| meta.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .skip_while(|arg| arg != "--messages")
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap_or(5_000);
    let texts = test_support::repo::corpus_texts();
    let messages: Vec<DiscordMessage> = (0..count)
        .map(|i| message(i, &texts[i % texts.len()]))
        .collect();
    let json_bytes: usize = messages
        .iter()
        .map(|message| {
            serde_json::to_vec(message)
                .map(|bytes| bytes.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "{count} messages of the public corpus, {:.0} bytes of JSON each on average\n",
        json_bytes as f64 / count as f64
    );
    println!("| codec | one at a time (msg/s) | burst (msg/s) | stored bytes/msg |");
    println!("|---|---|---|---|");
    for codec in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::None,
    ] {
        let mut kafka = KafkaConfig::new(services::kafka_bootstrap())
            .with_topic_suffix(test_support::unique_suffix());
        kafka.compression = codec;
        services::create_topics(&kafka).await;
        let producer = Producer::new(&kafka, "bench").expect("producer");
        let half = count / 2;
        let started = Instant::now();
        for message in &messages[..half] {
            producer.send(message).await.expect("acked");
        }
        let sequential = half as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let burst = join_all(
            messages[half..]
                .iter()
                .map(|message| producer.send(message)),
        )
        .await;
        assert!(burst.iter().all(Result::is_ok), "every record acknowledged");
        let burst_rate = (count - half) as f64 / started.elapsed().as_secs_f64();
        producer
            .flush(std::time::Duration::from_secs(30))
            .await
            .expect("flushed");
        let topic = kafka.topics().name(TopicKind::DiscordMessages);
        // The broker appends to the log before it acknowledges; the files hold every record.
        let bytes = stored_bytes(&topic);
        println!(
            "| {} | {sequential:.0} | {burst_rate:.0} | {:.0} |",
            codec.as_str(),
            bytes as f64 / count as f64
        );
        Admin::connect(&kafka)
            .await
            .expect("broker")
            .delete()
            .await
            .expect("topics deleted");
    }
}
