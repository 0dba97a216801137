//! Shared helpers of the processor's integration tests: real Kafka, real Chroma, fake model.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use futures::future::join_all;
use processor::store::{ChromaStore, StoreConfig, VectorStore};
use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, DiscordMessage, MessageEvent};
use serde_json::{json, Map};
use test_support::app::{self, Running};
use test_support::topic::TopicReader;
use test_support::{eventually, services};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(90);

/// A processor config for private topics and a private collection; `extra` adds flags.
pub fn config(
    kafka: &KafkaConfig,
    chroma_url: &str,
    collection: &str,
    extra: &[&str],
) -> processor::Config {
    let mut args: Vec<String> = [
        "--chroma-url",
        chroma_url,
        "--chroma-collection",
        collection,
        "--ingest-batch-linger-ms",
        "50",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.push("--processor-instance-id".into());
    args.push(uuid::Uuid::new_v4().to_string());
    args.extend(extra.iter().map(|arg| arg.to_string()));
    app::config("processor", kafka, &args)
}

/// The processor running in-process as `main` runs it.
pub fn run_in_process(config: processor::Config) -> Running {
    Running::spawn("processor", |shutdown| processor::run(config, shutdown))
}

/// One test's processor, in-process, on its own topics, group and collection, with what the
/// test talks to it through: a producer, the collection, and `kafka` for readers.
pub struct TestProcessor {
    pub kafka: KafkaConfig,
    /// Its `/healthz`, `/readyz` and `/metrics` (bound by [`processor::App::build`]).
    pub http_addr: std::net::SocketAddr,
    pub producer: Producer,
    pub store: ChromaStore,
    config: processor::Config,
    running: Running,
}

impl TestProcessor {
    /// Publishes `waiting` (records the processor finds on start) to private topics, then
    /// starts the processor with the flags `extra` (added to [`config`]'s).
    pub async fn start(waiting: &[DiscordMessage], extra: &[&str]) -> Self {
        let kafka = services::kafka_with_topics().await;
        let producer = Producer::new(&kafka, "test").expect("producer");
        publish(&producer, waiting).await;
        Self::start_on(kafka, producer, extra).await
    }

    /// Starts the processor on topics the test already prepared.
    pub async fn start_on(kafka: KafkaConfig, producer: Producer, extra: &[&str]) -> Self {
        let chroma = services::chroma_url();
        let collection = collection_name();
        let config = config(&kafka, &chroma, &collection, extra);
        let (http_addr, running) = Self::launch(config.clone()).await;
        let store = store(&chroma, &collection).await;
        Self {
            kafka,
            http_addr,
            producer,
            store,
            config,
            running,
        }
    }

    async fn launch(config: processor::Config) -> (std::net::SocketAddr, Running) {
        let shutdown = CancellationToken::new();
        let app = processor::App::build(config, shutdown.clone())
            .await
            .expect("the processor builds")
            .expect("not shut down while building");
        let http_addr = app.http_addr();
        let running = Running::spawn_built("processor", shutdown, app.run_until_stopped());
        (http_addr, running)
    }

    /// Restarts it (see [`TestProcessor::restart`]) with its configuration changed by `change`,
    /// as after a deploy with new settings.
    pub async fn restart_with(mut self, change: impl FnOnce(&mut processor::Config)) -> Self {
        change(&mut self.config);
        self.restart().await
    }

    /// Stops it (it must end cleanly) and starts it again: same topics, group, instance id
    /// and collection, as after a deploy.
    pub async fn restart(mut self) -> Self {
        self.running.stop().await;
        (self.http_addr, self.running) = Self::launch(self.config.clone()).await;
        self
    }

    /// Publishes a question asked in channel 11 of guild 1 (the conversations' channel) by
    /// message `id`, and returns it.
    pub async fn ask(&self, id: u64, question: &str) -> BotQuery {
        let asked = query(id, Some("1"), "11", question);
        self.producer.send(&asked).await.expect("acked");
        asked
    }

    /// Its collection's name.
    pub fn collection(&self) -> &str {
        &self.config.store.chroma_collection
    }

    /// Asks as [`TestProcessor::ask`] does and waits for the first committed answer.
    pub async fn answer(&self, id: u64, question: &str) -> BotResponse {
        self.ask(id, question).await;
        let mut reader = ResponseReader::new(&self.kafka);
        reader.until("the answer", |seen| !seen.is_empty()).await;
        reader.seen.remove(0)
    }

    /// Waits until the collection holds `count` messages.
    pub async fn until_indexed(&self, count: usize) {
        eventually(WAIT, &format!("{count} messages indexed"), || async {
            (self.store.count().await.ok()? == count).then_some(())
        })
        .await;
    }

    /// The status of its `/readyz` and the body.
    pub async fn readyz(&self) -> (u16, String) {
        test_support::http_get(&format!("http://{}/readyz", self.http_addr))
            .await
            .expect("the processor's HTTP endpoint answers")
    }

    /// Stops the processor (it must end cleanly) and drops the collection (and the answered
    /// questions' one, if it made it).
    pub async fn stop(self) {
        self.running.stop().await;
        self.store.drop_collection().await.expect("cleanup");
        let mut questions = self.config.store.clone();
        questions.chroma_collection = format!("{}_questions", questions.chroma_collection);
        if let Ok(questions) = ChromaStore::connect(&questions).await {
            let _ = questions.drop_collection().await;
        }
    }
}

pub fn collection_name() -> String {
    format!("test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub async fn store(chroma_url: &str, collection: &str) -> ChromaStore {
    ChromaStore::connect(&StoreConfig::new(chroma_url, collection))
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot reach Chroma at {chroma_url}: {err}; start it with scripts/chroma.sh start"
            )
        })
}

pub fn message(
    id: u64,
    guild: Option<&str>,
    channel: &str,
    content: &str,
    minute: u32,
) -> DiscordMessage {
    DiscordMessage {
        message_id: id.into(),
        content: content.to_string(),
        username: format!("user{}", id % 7),
        user_id: (1000 + id % 7).into(),
        channel_id: channel.parse().expect("an id"),
        timestamp: (chrono::DateTime::parse_from_rfc3339("2025-11-02T10:00:00.000Z")
            .expect("base time")
            + chrono::Duration::minutes(i64::from(minute)))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        metadata: Map::from_iter([("channel_name".to_string(), json!("general"))]),
        guild_id: guild.map(|id| id.parse().expect("an id")),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

pub fn query(id: u64, guild: Option<&str>, channel: &str, question: &str) -> BotQuery {
    BotQuery {
        query_id: rtfm_core::ids::QueryId::random(),
        original_message_id: id.into(),
        question: question.to_string(),
        username: "asker".into(),
        user_id: 4242.into(),
        channel_id: channel.parse().expect("an id"),
        timestamp: now_timestamp(),
        context: Map::new(),
        guild_id: guild.map(|id| id.parse().expect("an id")),
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

/// Publishes concurrently (in chunks) and waits for every ack.
pub async fn publish<T: rtfm_core::Record>(producer: &Producer, records: &[T]) {
    for chunk in records.chunks(500) {
        for result in join_all(chunk.iter().map(|record| producer.send(record))).await {
            result.expect("record acknowledged");
        }
    }
}

/// Reads committed responses (fresh group, from the beginning) until `done` holds: the shared
/// [`TopicReader`], with the responses at hand in `seen`.
pub struct ResponseReader {
    reader: TopicReader<BotResponse>,
    pub seen: Vec<BotResponse>,
}

impl ResponseReader {
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            reader: TopicReader::new(kafka),
            seen: Vec::new(),
        }
    }

    pub async fn until(&mut self, what: &str, done: impl Fn(&[BotResponse]) -> bool) {
        self.reader
            .until(what, WAIT, |seen| {
                let records: Vec<BotResponse> = seen
                    .iter()
                    .map(|received| received.record.clone())
                    .collect();
                done(&records)
            })
            .await;
        self.refresh();
    }

    /// Whatever else arrives within `quiet` (to prove nothing more does).
    pub async fn drain(&mut self, quiet: Duration) {
        self.reader.nothing_within(quiet).await;
        self.refresh();
    }

    fn refresh(&mut self) {
        self.seen = self.reader.records().into_iter().cloned().collect();
    }

    pub fn for_query(&self, query_id: &str) -> Vec<&BotResponse> {
        self.seen
            .iter()
            .filter(|response| response.query_id == query_id)
            .collect()
    }
}

/// Flags for hosted Gemini embeddings at `base` (the fake's 4-d vectors), then `extra`.
pub fn hosted_embedding_flags<'a>(base: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec![
        "--embedding-provider",
        "gemini",
        "--embedding-base-url",
        base,
        "--embedding-dimensions",
        "4",
    ];
    flags.extend_from_slice(extra);
    flags
}

/// A small conversation: a question in guild 1 / channel A and its answer right after it.
pub fn conversation() -> Vec<DiscordMessage> {
    vec![
        message(
            7_000_001,
            Some("1"),
            "11",
            "hey all, how do I rotate the deploy key for the bot?",
            0,
        ),
        message(
            7_000_002,
            Some("1"),
            "11",
            "run `vaultctl rotate --key deploy --force` and restart the bot",
            1,
        ),
        message(7_000_003, Some("1"), "11", "thanks, that worked", 2),
        message(7_000_004, Some("1"), "12", "lunch anyone?", 3),
        message(
            7_000_005,
            Some("2"),
            "21",
            "our wiki moved to the new domain",
            4,
        ),
    ]
}
