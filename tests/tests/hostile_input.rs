//! Hostile input against the running services: 1 000 malformed records of every kind on each
//! topic, interleaved with real traffic. Everything bad lands in a dead-letter topic, everything
//! good is still served.

use std::collections::BTreeSet;
use std::time::Duration;

use processor::store::{ChromaStore, StoreConfig, VectorStore};
use rtfm_core::kafka::Producer;
use rtfm_core::TopicKind;
use serde_json::json;
use test_support::fake_discord::{self, FakeDiscord};
use test_support::process::{spawn_bot, spawn_processor};
use test_support::{eventually, services};

const WAIT: Duration = Duration::from_secs(180);

/// 1 000 bad payloads: broken JSON, wrong types, missing fields, oversized text, bad ids,
/// bad timestamps, binary garbage, empty and huge records.
fn malformed(kind: TopicKind) -> Vec<Vec<u8>> {
    let valid = match kind {
        TopicKind::DiscordMessages => {
            json!({"message_id": "1", "content": "x", "username": "u", "user_id": "2", "channel_id": "3", "timestamp": "2025-11-02T12:34:56Z"})
        }
        TopicKind::BotQueries => {
            json!({"query_id": "q", "original_message_id": "1", "question": "x", "username": "u", "user_id": "2", "channel_id": "3", "timestamp": "2025-11-02T12:34:56Z"})
        }
        TopicKind::BotResponses => {
            json!({"response_id": "r", "query_id": "q", "original_message_id": "1", "response_text": "x", "channel_id": "3", "timestamp": "2025-11-02T12:34:56Z"})
        }
        TopicKind::Control => {
            json!({"kind": "channel", "guild_id": "6", "channel_id": "3", "indexed": true, "at": "2025-11-02T12:34:56Z"})
        }
    };
    let text_field = match kind {
        TopicKind::DiscordMessages => "content",
        TopicKind::BotQueries => "question",
        TopicKind::BotResponses => "response_text",
        TopicKind::Control => "reason",
    };
    let time_field = match kind {
        TopicKind::Control => "at",
        _ => "timestamp",
    };
    let mut out = Vec::new();
    for i in 0..125usize {
        out.push(format!("{{\"broken\": {i}").into_bytes());
        let mut wrong = valid.clone();
        wrong["channel_id"] = json!(i);
        out.push(serde_json::to_vec(&wrong).unwrap_or_default());
        let mut missing = valid.clone();
        missing
            .as_object_mut()
            .map(|object| object.remove(time_field));
        out.push(serde_json::to_vec(&missing).unwrap_or_default());
        let mut oversized = valid.clone();
        oversized[text_field] = json!("y".repeat(20_000 + i));
        out.push(serde_json::to_vec(&oversized).unwrap_or_default());
        let mut bad_id = valid.clone();
        bad_id["channel_id"] = json!(format!("../{i}"));
        out.push(serde_json::to_vec(&bad_id).unwrap_or_default());
        let mut bad_time = valid.clone();
        bad_time[time_field] = json!("last tuesday");
        out.push(serde_json::to_vec(&bad_time).unwrap_or_default());
        out.push(vec![0xff, 0xfe, (i % 256) as u8, 0x00]);
        out.push(if i % 2 == 0 {
            Vec::new()
        } else {
            vec![b'['; 300_000]
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_malformed_records_per_topic_are_dead_lettered_while_real_traffic_is_served() {
    let kafka = services::kafka_with_topics().await;
    let chroma = services::chroma_url();
    let collection = format!(
        "hostile_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let fake = FakeDiscord::start().await;
    fake.add_channel(60, Some(6), "hostile");
    let (_processor, _) = spawn_processor(
        &kafka,
        &chroma,
        &collection,
        &[("LLM_PROVIDER", "extractive"), ("RUST_LOG", "error")],
    );
    let (_bot, _) = spawn_bot(
        &kafka,
        &fake.base_url(),
        "hostile-token",
        &[("RUST_LOG", "error")],
    );
    eventually(WAIT, "bot connected", || async {
        (fake.identifies() >= 1 && !fake.commands().is_empty()).then_some(())
    })
    .await;

    let producer = Producer::new(&kafka, "hostile").expect("producer");
    let topics = kafka.topics();
    let batches: Vec<(String, Vec<Vec<u8>>)> = TopicKind::ALL
        .iter()
        .map(|&kind| (topics.name(kind), malformed(kind)))
        .collect();
    for round in 0..10usize {
        for (topic, payloads) in &batches {
            for payload in &payloads[round * 100..(round + 1) * 100] {
                producer
                    .send_raw(topic, Some("3"), payload, None)
                    .await
                    .expect("acked");
            }
        }
        // Real traffic between the garbage.
        let author = fake_discord::user(900 + round as u64, "human", false);
        fake.push_message(fake_discord::message(
            61_000_000 + round as u64,
            60,
            Some(6),
            author,
            &format!("the port of service {round} is {}", 8000 + round),
        ));
    }
    let store = ChromaStore::connect(&StoreConfig::new(&chroma, &collection))
        .await
        .expect("chroma");
    // The facts are in (indexed behind the garbage); now the questions, which must find them.
    eventually(WAIT, "the 10 facts indexed", || async {
        (store.count().await.ok()? == 10).then_some(())
    })
    .await;
    for round in 0..10u64 {
        fake.push_message(fake_discord::message(
            61_100_000 + round,
            60,
            Some(6),
            fake_discord::user(900 + round, "human", false),
            &format!("rtfm what is the port of service {round}?"),
        ));
    }

    eventually(WAIT, "10 answers", || async {
        let replied: BTreeSet<u64> = fake
            .posts()
            .iter()
            .filter_map(|post| post.reply_to())
            .collect();
        (replied.len() == 10).then_some(())
    })
    .await;
    // Counted from the dead-letter topics themselves: every malformed record exactly once.
    for kind in TopicKind::ALL {
        let origin = topics.name(kind);
        let dead = services::until_dead_lettered(&kafka, kind, 1000, WAIT).await;
        let origins: BTreeSet<(i32, i64)> = dead
            .iter()
            .map(|letter| (letter.origin_partition, letter.origin_offset))
            .collect();
        assert_eq!(dead.len(), 1000, "no record dead-lettered twice ({origin})");
        assert_eq!(origins.len(), 1000, "each from its own offset ({origin})");
        let malformed = malformed(kind);
        for letter in &dead {
            assert_eq!(letter.origin_topic, origin);
            assert!(!letter.error.is_empty(), "every dead letter says why");
            assert!(
                malformed.contains(&letter.payload),
                "the original bytes are kept"
            );
        }
    }
    // Once the ingest group is past every valid record, only the facts are indexed: the
    // questions to the bot are never evidence.
    let read = services::until_group_passed_all::<rtfm_core::DiscordMessage>(
        &kafka,
        rtfm_core::topics::GROUP_MESSAGE_PROCESSOR,
        WAIT,
    )
    .await;
    assert_eq!(read, 20, "the 20 real messages reached Kafka");
    assert_eq!(
        store.count().await.expect("count"),
        10,
        "the 10 facts, not the questions"
    );
    // The real questions got real answers: the port of the service asked about, with its link.
    let posts = fake.posts();
    assert_eq!(posts.len(), 10, "one reply per real question");
    for round in 0..10u64 {
        let reply = posts
            .iter()
            .find(|post| post.reply_to() == Some(61_100_000 + round))
            .unwrap_or_else(|| panic!("no reply to question {round}"));
        let text = reply.content();
        assert!(
            text.contains(&format!("the port of service {round} is {}", 8000 + round)),
            "answer {round} quotes its fact: {text}"
        );
        assert!(
            text.contains(&format!("/6/60/{}", 61_000_000 + round)),
            "and links it: {text}"
        );
    }
    println!("hostile input: 3 000 malformed records dead-lettered, 20 real messages indexed, 10 questions answered");
    let _ = store.drop_collection().await;
}
