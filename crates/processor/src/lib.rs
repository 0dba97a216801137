//! The RTFM processor: indexes every Discord message and answers questions.
//!
//! ```text
//! discord-messages ──▶ ingest ──▶ embedding ──▶ store (Chroma)
//! bot-queries ──▶ queries ──▶ answer ──▶ retrieval ──▶ model | extractive ──▶ bot-responses
//! ```
//!
//! - [`ingest`]: at-least-once, idempotent indexing in batches (offsets stored after the upsert);
//! - [`instance`]: this process's unique, restart-stable instance id;
//! - [`queries`]: exactly-once answering (Kafka transaction with the input offsets);
//! - [`answer`]: retrieval → model → response, with the extractive fallback;
//! - [`retrieval`]: scoped vector search, each hit expanded into its conversation;
//! - [`conversation`]: which messages belong to a hit's conversation (replies, mentions,
//!   threads, names; pure);
//! - [`index`]: the index format (Chroma metadata written and read in one place) and the
//!   scope filter;
//! - [`prompt`]: prompt building and reply rendering (pure);
//! - [`model`]: Gemini / OpenAI-compatible clients, retries, circuit breaker;
//! - [`embedding`]: all-MiniLM-L6-v2 in-process (ONNX Runtime) or a hosted API;
//! - [`store`]: the vector store port, a store-neutral filter, and its adapters (Chroma, in-memory);
//! - [`metrics`]: Prometheus metrics.
//!
//! [`App::build`] binds the HTTP endpoint and builds the parts (embedder, Chroma, Kafka clients,
//! transactional producer); [`App::run_until_stopped`] runs them under one supervisor until
//! shutdown. [`run`] is both; `main.rs` only parses the config and calls it.

pub mod answer;
pub mod asked;
pub mod conversation;
pub mod embedding;
pub mod gate;
pub mod index;
pub mod ingest;
pub mod instance;
pub mod metrics;
pub mod model;
mod monitor;
pub mod prompt;
pub mod queries;
pub mod removal;
pub mod retention;
pub mod retrieval;
mod startup;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rtfm_core::control::ControlSettings;
use rtfm_core::kafka::Follower;
use rtfm_core::kafka::{Consumer, ConsumerOptions, KafkaConfig, OffsetReset, Producer};
use rtfm_core::supervise::{every, Service};
use rtfm_core::topics::{GROUP_CONTROL_APPLIER, GROUP_MESSAGE_PROCESSOR, GROUP_QUERY_PROCESSOR};
use rtfm_core::{BotQuery, ControlRecord, DiscordMessage};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::answer::{Answerer, StalePolicy};
use crate::asked::AskedBefore;
pub use crate::embedding::{build_embedder, EmbeddingSettings};
use crate::gate::Gate;
use crate::ingest::{Indexer, IngestSettings};
use crate::instance::Instance;
use crate::model::{ModelClient, ModelSettings};
use crate::retrieval::{RetrievalSettings, Retriever};
pub use crate::startup::{connect_store, hosted_fallback};
use crate::startup::{probe_embedding, probe_model, register_transactional};
use crate::store::{ChromaStore, StoreConfig, VectorStore};

/// Everything the processor service needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub embedding: EmbeddingSettings,
    #[command(flatten)]
    pub retrieval: RetrievalSettings,
    #[command(flatten)]
    pub model: ModelSettings,
    #[command(flatten)]
    pub ingest: IngestSettings,
    #[command(flatten)]
    pub control: ControlSettings,
    /// After RTFM is removed from a guild, its messages stay this many hours (in case it was
    /// a mistake and RTFM is added back), then leave the index.
    #[arg(
        long = "index-guild-grace-hours",
        env = "INDEX_GUILD_GRACE_HOURS",
        default_value_t = 168.0
    )]
    pub index_guild_grace_hours: f64,
    /// Questions older than this are answered with an apology (or skipped).
    #[arg(
        long = "query-max-age-secs",
        env = "QUERY_MAX_AGE_SECS",
        default_value_t = 3600
    )]
    pub query_max_age_secs: i64,
    #[arg(
        long = "query-stale-policy",
        env = "QUERY_STALE_POLICY",
        value_enum,
        default_value = "answer"
    )]
    pub query_stale_policy: StalePolicy,
    /// Answers in Kafka transactions (exactly one response per query). `false` only for
    /// consumers of bot-responses that cannot read a transactional topic (kafka-python 2.0.2):
    /// then at least one response per query, which the bot deduplicates.
    #[arg(
        long = "responses-transactional",
        env = "RESPONSES_TRANSACTIONAL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub responses_transactional: bool,
    /// Where a new ingestion group starts reading discord-messages.
    #[arg(
        long,
        env = "INGEST_OFFSET_RESET",
        value_enum,
        default_value = "earliest"
    )]
    pub ingest_offset_reset: OffsetReset,
    #[command(flatten)]
    pub service: rtfm_core::supervise::ServiceArgs,
    /// Id of this instance (its Kafka transactional id and static membership id). Default:
    /// `<host name>-<slot>`, unique per live process and stable across restarts (see
    /// `instance`). Set it only if you manage ids yourself; two live processes must never share one.
    #[arg(long = "processor-instance-id", env = "PROCESSOR_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// A question that nearly repeats one answered in the last this many days also links to
    /// it (0: off).
    #[arg(
        long = "asked-before-days",
        env = "ASKED_BEFORE_DAYS",
        default_value_t = 30
    )]
    pub asked_before_days: u64,
    /// Messages older than this many days leave the index (checked hourly). Unset or 0: kept
    /// until deleted in Discord.
    #[arg(long = "index-retention-days", env = "INDEX_RETENTION_DAYS")]
    pub index_retention_days: Option<u64>,
}

/// Runs the processor until `shutdown` is cancelled or a part of it fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    match App::build(config, shutdown).await? {
        Some(app) => app.run_until_stopped().await,
        // Shut down while waiting for Chroma.
        None => Ok(()),
    }
}

/// The processor with its parts built and its HTTP endpoint bound, not yet consuming.
pub struct App {
    service: Service,
    producer: Producer,
    store: Arc<dyn VectorStore>,
    ingest_consumer: Arc<Consumer<DiscordMessage>>,
    query_consumer: Arc<Consumer<BotQuery>>,
    control_consumer: Arc<Consumer<ControlRecord>>,
    removal: removal::Removal,
    guild_grace: Duration,
    responses: queries::Responses,
    answerer: Arc<Answerer>,
    indexer: Indexer,
    ingest: IngestSettings,
    /// `INDEX_RETENTION_DAYS`, when set.
    retention_days: Option<u64>,
    /// The question log, and how many days it keeps.
    questions: (Arc<dyn VectorStore>, u64),
    /// Held while the app lives: the slot lock keeps the instance id ours.
    _instance: Instance,
}

impl App {
    /// Binds `HTTP_ADDR`, loads the embedder, connects to Chroma (waiting for it) and Kafka,
    /// and registers the transactional producer. `None` if `shutdown` fired while waiting.
    pub async fn build(
        config: Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let service = Service::bind(
            "processor",
            &config.service,
            SocketAddr::from(([127, 0, 0, 1], 8081)),
            &["kafka", "chroma"],
            &shutdown,
        )
        .await?;
        let (readiness, stop) = (&service.readiness, &service.stop);
        info!(
            provider = config.model.effective_provider().as_str(),
            "answering model"
        );

        let embedder = build_embedder(&config.embedding, &hosted_fallback(&config.model)).await?;
        if let crate::embedding::Embedder::Hosted(_) = &embedder {
            // A refused key or a wrong model shows at start, not at the first message.
            tokio::spawn(probe_embedding(
                embedder.clone(),
                readiness.clone(),
                stop.clone(),
            ));
        }
        let Some(store) = connect_store(&config.store, readiness, stop).await? else {
            return Ok(None);
        };
        let store: Arc<dyn VectorStore> = Arc::new(store);
        let model = ModelClient::new(&config.model)?;
        let producer = Producer::new(&config.kafka, "processor")
            .context("while creating the Kafka producer")?;
        let instance = Instance::acquire(
            config.instance_id.as_deref(),
            &config.kafka.topics().group(GROUP_QUERY_PROCESSOR),
        )
        .context("while choosing this instance's id")?;
        info!(instance_id = instance.id(), "processor instance");
        let ingest_consumer: Arc<Consumer<DiscordMessage>> = Arc::new(Consumer::new(
            &config.kafka,
            &ConsumerOptions::new(GROUP_MESSAGE_PROCESSOR, "ingest")
                .offset_reset(config.ingest_offset_reset)
                .static_member(instance.id()),
            producer.clone(),
        )?);
        let query_options =
            ConsumerOptions::new(GROUP_QUERY_PROCESSOR, "queries").static_member(instance.id());
        let query_options = if config.responses_transactional {
            query_options.transactional()
        } else {
            query_options
        };
        let query_consumer: Arc<Consumer<BotQuery>> = Arc::new(Consumer::new(
            &config.kafka,
            &query_options,
            producer.clone(),
        )?);
        let responses = if config.responses_transactional {
            let transactional_id = format!(
                "{}-{}",
                config.kafka.topics().group(GROUP_QUERY_PROCESSOR),
                instance.id()
            );
            let Some(producer) =
                register_transactional(&config.kafka, &transactional_id, readiness, stop).await?
            else {
                return Ok(None);
            };
            queries::Responses::Transactional(producer)
        } else {
            info!("bot-responses written without transactions (RESPONSES_TRANSACTIONAL=false): at least once");
            queries::Responses::AtLeastOnce(producer.clone())
        };
        let control_consumer: Arc<Consumer<ControlRecord>> = Arc::new(Consumer::new(
            &config.kafka,
            &ConsumerOptions::new(GROUP_CONTROL_APPLIER, "control")
                // Not a static member: closing a static member that is still joining its group
                // blocked for tens of seconds (a processor stopped right after it started);
                // a dynamic one leaves at once. After a kill, its removals wait for the
                // session timeout (10 s) to move to another processor.
                .offset_reset(OffsetReset::Earliest),
            producer.clone(),
        )?);
        readiness.set("kafka", true);
        let follower = Follower::start(&config.kafka, "processor", stop.clone())
            .context("while following the community's choices")?;
        let gate = Gate::following(Arc::clone(&follower), config.control.index_channels);

        let mut questions = config.store.clone();
        questions.chroma_collection = format!("{}_questions", config.store.chroma_collection);
        let questions: Arc<dyn VectorStore> = Arc::new(
            ChromaStore::connect(&questions)
                .await
                .context("while opening the collection of answered questions")?,
        );
        // Every question is kept (the moderators' status); linking repeats is the option.
        let asked_before = Some(AskedBefore {
            store: Arc::clone(&questions),
            within_days: config.asked_before_days,
            scope: config.retrieval.scope,
            gate: gate.clone(),
        });
        let question_days = config.asked_before_days.max(asked::QUESTION_DAYS);
        let removal = removal::Removal {
            messages: Arc::clone(&store),
            others: vec![Arc::clone(&questions)],
            producer: producer.clone(),
            follower,
            settle: Duration::from_secs(5),
        };
        let answerer = Arc::new(Answerer {
            retriever: Retriever {
                store: Arc::clone(&store),
                embedder: embedder.clone(),
                settings: config.retrieval.clone(),
                gate: gate.clone(),
            },
            model,
            asked_before,
            max_age_secs: config.query_max_age_secs,
            stale_policy: config.query_stale_policy,
        });
        // A refused key or a wrong model name shows at start, not at the first question.
        tokio::spawn(probe_model(Arc::clone(&answerer), stop.clone()));
        let indexer = Indexer {
            store: Arc::clone(&store),
            embedder,
            gate,
        };
        Ok(Some(Self {
            service,
            producer,
            store,
            ingest_consumer,
            query_consumer,
            control_consumer,
            removal,
            // At most about a century; NaN or negative: none (a value clap accepts must not
            // stop the start).
            guild_grace: Duration::try_from_secs_f64(
                config.index_guild_grace_hours.clamp(0.0, 876_000.0) * 3600.0,
            )
            .unwrap_or(Duration::from_secs(168 * 3600)),
            responses,
            answerer,
            indexer,
            ingest: config.ingest,
            retention_days: config.index_retention_days.filter(|days| *days > 0),
            questions: (questions, question_days),
            _instance: instance,
        }))
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served (`HTTP_ADDR` with its port bound).
    pub fn http_addr(&self) -> SocketAddr {
        self.service.http_addr()
    }

    /// Ingests and answers until the shutdown token fires or a part fails; then gives the
    /// parts the grace period to finish what they hold and flushes the producer.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (readiness, stop) = (&self.service.readiness, &self.service.stop);
        let mut tasks = JoinSet::new();
        tasks.spawn(ingest::run(
            Arc::clone(&self.ingest_consumer),
            self.indexer,
            self.ingest,
            readiness.clone(),
            stop.clone(),
        ));
        tasks.spawn(queries::run(
            Arc::clone(&self.query_consumer),
            self.responses,
            Arc::clone(&self.answerer),
            stop.clone(),
        ));
        tasks.spawn(removal::run(
            Arc::clone(&self.control_consumer),
            self.removal.clone(),
            stop.clone(),
        ));
        tasks.spawn(removal::sweep_removed_guilds(
            self.removal,
            Arc::clone(&self.control_consumer),
            self.guild_grace,
            (self.guild_grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(600)),
            stop.clone(),
        ));
        let (questions, question_days) = self.questions;
        tasks.spawn(retention::run(questions, question_days, stop.clone()));
        if let Some(days) = self.retention_days {
            tasks.spawn(retention::run(Arc::clone(&self.store), days, stop.clone()));
        }
        let monitor = monitor::Monitor {
            producer: self.producer.clone(),
            store: self.store,
            ingest_consumer: self.ingest_consumer,
            query_consumer: self.query_consumer,
            answerer: self.answerer,
            readiness: readiness.clone(),
        };
        let monitor_stop = stop.clone();
        tasks.spawn(async move {
            every(Duration::from_secs(2), &monitor_stop, || monitor.check()).await
        });
        self.service.run(tasks, &self.producer).await
    }
}
