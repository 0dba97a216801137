//! What the bot's tests share: the real bot, in-process, against a fake Discord (REST +
//! gateway) and the real Kafka broker, and the helpers that drive them.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeSet;
pub use std::time::Duration;

pub use rtfm_core::kafka::{KafkaConfig, Producer};
pub use rtfm_core::schema::now_timestamp;
pub use rtfm_core::{
    BotQuery, BotResponse, DiscordMessage, MessageEvent, Record, ResponseMetadata,
};
pub use serde_json::{json, Map, Value};
pub use test_support::app::{self, Running};
pub use test_support::fake_discord::{self, Failure, FakeDiscord, FakeOptions, PostKind, BOT_ID};
pub use test_support::topic::TopicReader;
pub use test_support::{eventually, services};
pub use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);
pub const GUILD: u64 = 10;
pub const CHANNEL: u64 = 20;

/// One test's bot, in-process, built as `main` builds it ([`bot::App::build`]) and connected to
/// a fake Discord, on the test's private topics.
pub struct TestBot {
    /// Its `/healthz`, `/readyz` and `/metrics`.
    pub http_addr: std::net::SocketAddr,
    running: Running,
}

impl TestBot {
    /// The bot's config for `fake` and `kafka`; `extra` adds flags. The fake is reached as a
    /// proxy (serenity's rate limiter off) unless `extra` says otherwise (see
    /// [`TestBot::as_in_production`]).
    pub fn config(fake: &FakeDiscord, kafka: &KafkaConfig, extra: &[&str]) -> bot::Config {
        let reach: Vec<String> = if extra.contains(&"--discord-test-endpoint") {
            Vec::new()
        } else {
            vec!["--discord-api-url".into(), fake.base_url()]
        };
        let mut args: Vec<String> = vec![
            "--discord-token".into(),
            "fake-discord-token-abc".into(),
            // Per test: the file is named after the test's private topics.
            "--bot-state-dir".into(),
            std::env::temp_dir()
                .join("rtfm-bot-tests")
                .display()
                .to_string(),
        ];
        args.extend(reach);
        args.extend(extra.iter().map(|arg| arg.to_string()));
        app::config("bot", kafka, &args)
    }

    /// Flags that run the bot exactly as in production — `https://discord.com/api/v10`,
    /// serenity's rate limiter on — with only `discord.com` resolved to the fake's TLS port and
    /// the fake's CA trusted.
    pub fn as_in_production(fake: &FakeDiscord) -> Vec<String> {
        fake.production_flags()
    }

    /// Starts it and waits for its READY and its `/rtfm` registration.
    pub async fn start(fake: &FakeDiscord, kafka: &KafkaConfig, extra: &[&str]) -> Self {
        let identified = fake.identifies();
        let shutdown = CancellationToken::new();
        let app = bot::App::build(Self::config(fake, kafka, extra), shutdown.clone())
            .await
            .expect("the bot builds");
        let http_addr = app.http_addr();
        let running = Running::spawn_built("bot", shutdown, app.run_until_stopped());
        eventually(WAIT, "the bot to identify and register /rtfm", || async {
            (fake.identifies() > identified && !fake.commands().is_empty()).then_some(())
        })
        .await;
        Self { http_addr, running }
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

pub async fn setup() -> (FakeDiscord, KafkaConfig) {
    let fake = FakeDiscord::start().await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    (fake, services::kafka_with_topics().await)
}

/// As [`setup`], with a fake Discord that deduplicates no nonce at all (as after its window).
pub async fn setup_without_nonce_deduplication() -> (FakeDiscord, KafkaConfig) {
    let fake = FakeDiscord::start_with(FakeOptions {
        nonce_window: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    fake.add_channel(CHANNEL, Some(GUILD), "general");
    (fake, services::kafka_with_topics().await)
}

/// Publishes one record to the test's topics (as the processor would) and waits for the ack.
pub async fn publish<T: Record>(kafka: &KafkaConfig, record: &T) -> rtfm_core::kafka::Delivered {
    Producer::new(kafka, "test")
        .expect("producer")
        .send(record)
        .await
        .expect("acked")
}

/// Waits until the bot has committed past the response at `delivered`: it is done with it.
pub async fn until_done(kafka: &KafkaConfig, delivered: &rtfm_core::kafka::Delivered) {
    services::until_group_passed(
        kafka,
        rtfm_core::topics::GROUP_RESPONSE_SENDER,
        rtfm_core::TopicKind::BotResponses,
        &[(delivered.partition, delivered.offset)],
        WAIT,
    )
    .await;
}

/// The processor's answer to a slash question: it echoes the question's interaction (see
/// processor::answer), which is how the bot finds its follow-up token.
pub fn slash_answer(query: &BotQuery, id: u64, text: &str) -> BotResponse {
    let interaction = query
        .context
        .get("interaction")
        .cloned()
        .expect("the question carries its interaction");
    let mut answer = response(query.query_id.as_str(), id, text);
    answer
        .metadata
        .extra
        .insert("interaction".into(), interaction);
    answer
}

/// `/rtfm question:<question>` asked by member 42 in `CHANNEL` (interaction `id`).
pub fn slash(id: u64, question: &str) -> Value {
    fake_discord::slash_command(id, CHANNEL, GUILD, human(42), question)
}

pub fn human(id: u64) -> Value {
    fake_discord::user(id, &format!("human{id}"), false)
}

pub fn response(query_id: &str, original: u64, text: &str) -> BotResponse {
    BotResponse {
        response_id: uuid::Uuid::new_v4().to_string(),
        query_id: query_id.parse().expect("a query id"),
        original_message_id: original.into(),
        response_text: text.into(),
        channel_id: CHANNEL.into(),
        timestamp: now_timestamp(),
        metadata: ResponseMetadata {
            model: "test".into(),
            ..Default::default()
        },
        guild_id: Some(GUILD.into()),
        extra: Map::new(),
    }
}

/// Waits until the bot's durable marks (its state file) hold `marks` (channel → message):
/// what a restart will catch up from. Stopping a bot earlier may cut the wait for a message's
/// acknowledgement short, and the next start then publishes it again (harmless, the processor
/// upserts; but not what these tests count).
pub async fn until_marked(kafka: &KafkaConfig, marks: &[(u64, u64)]) {
    let path = std::env::temp_dir()
        .join("rtfm-bot-tests")
        .join(format!("bot-state{}.json", kafka.topic_suffix));
    eventually(WAIT, "the marks saved", || async {
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        marks
            .iter()
            .all(|(channel, message)| {
                saved["channels"][channel.to_string()] == json!(message.to_string())
            })
            .then_some(())
    })
    .await;
}

/// A message of guild `GUILD` posted now.
pub fn recent(id: u64, channel: u64, author: u64, content: &str) -> Value {
    fake_discord::message_now(id, channel, Some(GUILD), author, content)
}
