//! What the fault and chaos tests share: our binaries as processes on private topics and
//! collections, and the barriers on them.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeSet;
pub use std::time::{Duration, Instant};

pub use futures::future::join_all;
pub use processor::store::{ChromaStore, Filter, StoreConfig, VectorStore};
pub use rtfm_core::kafka::{KafkaConfig, Producer};
pub use rtfm_core::{BotResponse, DiscordMessage, MessageEvent, TopicKind};
pub use serde_json::{json, Map};
pub use test_support::fake_discord::{self, FakeDiscord, FakeOptions};
pub use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
pub use test_support::services::PrivateKafka;
pub use test_support::topic::TopicReader;
pub use test_support::{eventually, http_get, metric_value, services};

pub mod community;

pub const WAIT: Duration = Duration::from_secs(300);

pub fn collection() -> String {
    format!("fault_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub async fn store(chroma: &str, collection: &str) -> ChromaStore {
    ChromaStore::connect(&StoreConfig::new(chroma, collection))
        .await
        .expect("chroma reachable")
}

pub fn message(id: u64, channel: u64, text: String) -> DiscordMessage {
    DiscordMessage {
        message_id: id.into(),
        content: text,
        username: format!("user{}", id % 9),
        user_id: (500 + id % 9).into(),
        channel_id: channel.into(),
        timestamp: rtfm_core::schema::now_timestamp(),
        metadata: Map::from_iter([("channel_name".to_string(), json!("faults"))]),
        guild_id: Some(3.into()),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

pub fn processor(
    kafka: &KafkaConfig,
    chroma: &str,
    collection: &str,
    extra: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let mut env = vec![("LLM_PROVIDER", "extractive")];
    env.extend_from_slice(extra);
    spawn_processor(kafka, chroma, collection, &env)
}

pub fn bot(kafka: &KafkaConfig, fake: &FakeDiscord) -> ServiceProcess {
    let settings = [
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("RESPONSE_TIMEOUT_SECS", "600"),
    ];
    spawn_bot(kafka, &fake.base_url(), "fault-token", &settings).0
}

/// Waits until `bot-responses` holds a response to each of `triggers` questions and the bot's
/// group has committed past all of them: it has done all it will ever do for them (it commits
/// only after posting).
pub async fn until_bot_passed_every_response(kafka: &KafkaConfig, triggers: u64) {
    let mut responses: TopicReader<BotResponse> = TopicReader::new(kafka);
    responses
        .until("a response per trigger", WAIT, |seen| {
            seen.iter()
                .map(|r| r.record.original_message_id)
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
