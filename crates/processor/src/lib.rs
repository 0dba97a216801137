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
//! - [`store`]: the Chroma collection;
//! - [`eval`]: `processor eval`, retrieval quality on a public chat corpus;
//! - [`metrics`]: Prometheus metrics.
//!
//! [`run`] is the whole service; `main.rs` only parses the config and calls it.

pub mod answer;
pub mod conversation;
pub mod embedding;
pub mod eval;
pub mod index;
pub mod ingest;
pub mod instance;
pub mod metrics;
pub mod model;
pub mod prompt;
pub mod queries;
pub mod retrieval;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rtfm_core::backoff::Backoff;
use rtfm_core::kafka::{
    Consumer, ConsumerOptions, KafkaConfig, OffsetReset, Producer, TransactionalProducer,
};
use rtfm_core::supervise::supervise;
use rtfm_core::telemetry::{self, Readiness};
use rtfm_core::topics::{GROUP_MESSAGE_PROCESSOR, GROUP_QUERY_PROCESSOR};
use rtfm_core::{BotQuery, DiscordMessage};
use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::answer::{Answerer, StalePolicy};
use crate::embedding::{Embedder, EmbeddingProvider, HostedEmbedder, LocalModel};
use crate::ingest::{Indexer, IngestSettings};
use crate::instance::Instance;
use crate::model::{ModelClient, ModelSettings};
use crate::retrieval::{RetrievalSettings, Retriever};
use crate::store::{MessageStore, StoreConfig};

/// Embedding settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddingSettings {
    /// local (all-MiniLM-L6-v2 in-process) | gemini | openai.
    #[arg(
        long = "embedding-provider",
        env = "EMBEDDING_PROVIDER",
        value_enum,
        default_value = "local"
    )]
    pub embedding_provider: EmbeddingProvider,
    /// Directory with model.onnx, tokenizer.json and libonnxruntime.so, as `scripts/model.sh`
    /// fills it. Unset: ~/.cache/rtfm/models/all-MiniLM-L6-v2.
    #[arg(long = "embedding-model-dir", env = "EMBEDDING_MODEL_DIR")]
    pub embedding_model_dir: Option<PathBuf>,
    /// Sentences per forward pass of the local model.
    #[arg(
        long = "embedding-batch-size",
        env = "EMBEDDING_BATCH_SIZE",
        default_value_t = embedding::DEFAULT_BATCH_SIZE
    )]
    pub embedding_batch_size: usize,
    /// Threads of the local model's forward pass (0: one per core). Two processors on one
    /// machine should take half the cores each.
    #[arg(
        long = "embedding-threads",
        env = "EMBEDDING_THREADS",
        default_value_t = 0
    )]
    pub embedding_threads: usize,
    /// Hosted embedding model name (gemini-embedding-001, text-embedding-3-small, …).
    #[arg(
        long = "embedding-model",
        env = "EMBEDDING_MODEL",
        default_value = "gemini-embedding-001"
    )]
    pub embedding_model: String,
    /// Hosted embedding API base URL; default GEMINI_BASE_URL or OPENAI_BASE_URL.
    #[arg(long = "embedding-base-url", env = "EMBEDDING_BASE_URL")]
    pub embedding_base_url: Option<String>,
    /// Hosted embedding API key; default GEMINI_API_KEY or OPENAI_API_KEY.
    #[arg(long = "embedding-api-key", env = "EMBEDDING_API_KEY", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub embedding_api_key: Option<SecretString>,
    /// Vector size requested from a hosted API (must match the collection).
    #[arg(
        long = "embedding-dimensions",
        env = "EMBEDDING_DIMENSIONS",
        default_value_t = 384
    )]
    pub embedding_dimensions: usize,
}

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
    /// Where a new ingestion group starts reading discord-messages.
    #[arg(
        long,
        env = "INGEST_OFFSET_RESET",
        value_enum,
        default_value = "earliest"
    )]
    pub ingest_offset_reset: OffsetReset,
    /// /healthz, /readyz and /metrics.
    #[arg(
        long = "http-addr",
        env = "HTTP_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub http_addr: SocketAddr,
    /// Seconds the processor may take, after SIGTERM, to finish the batch or query in hand;
    /// what is still running then is left uncommitted for the next owner.
    #[arg(
        long = "shutdown-grace-secs",
        env = "SHUTDOWN_GRACE_SECS",
        default_value_t = 20
    )]
    pub shutdown_grace_secs: u64,
    /// Id of this instance (its Kafka transactional id and static membership id). Default:
    /// `<host name>-<slot>`, unique per live process and stable across restarts (see
    /// `instance`). Set it only if you manage ids yourself; two live processes must never share one.
    #[arg(long = "processor-instance-id", env = "PROCESSOR_INSTANCE_ID")]
    pub instance_id: Option<String>,
}

/// Loads the configured embedder.
pub async fn build_embedder(
    settings: &EmbeddingSettings,
    model: &ModelSettings,
) -> anyhow::Result<Embedder> {
    match settings.embedding_provider {
        EmbeddingProvider::Local => {
            let dir = settings
                .embedding_model_dir
                .clone()
                .unwrap_or_else(embedding::default_model_dir);
            let (batch_size, threads) = (settings.embedding_batch_size, settings.embedding_threads);
            let loaded =
                tokio::task::spawn_blocking(move || LocalModel::load(&dir, batch_size, threads))
                    .await
                    .context("while loading the embedding model")??;
            Ok(Embedder::Local(Arc::new(loaded)))
        }
        provider => {
            let (base, key) = if provider == EmbeddingProvider::Gemini {
                (model.gemini_base_url.clone(), model.gemini_api_key.clone())
            } else {
                (model.openai_base_url.clone(), model.openai_api_key.clone())
            };
            let hosted = HostedEmbedder::new(
                provider,
                settings.embedding_base_url.as_deref().unwrap_or(&base),
                &settings.embedding_model,
                settings.embedding_api_key.clone().or(key),
                settings.embedding_dimensions,
            )?;
            Ok(Embedder::Hosted(hosted))
        }
    }
}

/// Connects to Chroma, retrying until it answers or `shutdown` fires.
pub async fn connect_store(
    config: &StoreConfig,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<MessageStore>> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match MessageStore::connect(config).await {
            Ok(store) => {
                readiness.set("chroma", true);
                metrics::CHROMA_UP.set(1);
                return Ok(Some(store));
            }
            Err(store::StoreError::Rejected(reason)) => {
                anyhow::bail!(
                    "Chroma at {} refused the collection `{}`: {reason}",
                    config.chroma_url,
                    config.chroma_collection
                )
            }
            Err(err) => {
                readiness.set("chroma", false);
                warn!(error = %err, "waiting for Chroma");
                if !backoff.wait(shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Runs the processor until `shutdown` is cancelled or a part of it fails.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    readiness.set("kafka", false);
    readiness.set("chroma", false);
    // A failing task cancels this child token so its siblings stop too; the caller's token
    // stays untouched.
    let stop = shutdown.child_token();
    let (http_addr, http_task) =
        telemetry::serve(config.http_addr, readiness.clone(), stop.clone())
            .await
            .with_context(|| format!("while binding HTTP_ADDR {}", config.http_addr))?;
    info!(%http_addr, provider = config.model.effective_provider().as_str(), "processor starting");

    let embedder = build_embedder(&config.embedding, &config.model).await?;
    let Some(store) = connect_store(&config.store, &readiness, &stop).await? else {
        return Ok(());
    };
    let store = Arc::new(store);
    let model = ModelClient::new(&config.model)?;
    let producer =
        Producer::new(&config.kafka, "processor").context("while creating the Kafka producer")?;
    // Held until `run` returns: the slot lock keeps the id ours.
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
    let query_consumer: Arc<Consumer<BotQuery>> = Arc::new(Consumer::new(
        &config.kafka,
        &ConsumerOptions::new(GROUP_QUERY_PROCESSOR, "queries")
            .transactional()
            .static_member(instance.id()),
        producer.clone(),
    )?);
    let transactional_id = format!(
        "{}-{}",
        config.kafka.topics().group(GROUP_QUERY_PROCESSOR),
        instance.id()
    );
    let transactional = TransactionalProducer::new(&config.kafka, &transactional_id)
        .await
        .context("while registering the transactional producer")?;
    readiness.set("kafka", true);

    let answerer = Arc::new(Answerer {
        retriever: Retriever {
            store: Arc::clone(&store),
            embedder: embedder.clone(),
            settings: config.retrieval.clone(),
        },
        model,
        max_age_secs: config.query_max_age_secs,
        stale_policy: config.query_stale_policy,
    });
    let indexer = Indexer {
        store: Arc::clone(&store),
        embedder,
    };

    let mut tasks = JoinSet::new();
    tasks.spawn(ingest::run(
        Arc::clone(&ingest_consumer),
        indexer,
        config.ingest.clone(),
        readiness.clone(),
        stop.clone(),
    ));
    tasks.spawn(queries::run(
        Arc::clone(&query_consumer),
        transactional,
        Arc::clone(&answerer),
        stop.clone(),
    ));
    tasks.spawn(monitor(
        producer.clone(),
        Arc::clone(&store),
        ingest_consumer,
        query_consumer,
        answerer,
        readiness.clone(),
        stop.clone(),
    ));

    let outcome = supervise(
        "processor",
        tasks,
        stop.clone(),
        Duration::from_secs(config.shutdown_grace_secs.max(1)),
    )
    .await;
    let _ = http_task.await;
    if let Err(err) = producer.flush(Duration::from_secs(10)).await {
        warn!(error = %err, "producer flush at shutdown failed");
    }
    info!("processor stopped");
    outcome
}

/// Every few seconds: Kafka reachability, Chroma heartbeat, breaker state, consumer lag.
async fn monitor(
    producer: Producer,
    store: Arc<MessageStore>,
    ingest_consumer: Arc<Consumer<DiscordMessage>>,
    query_consumer: Arc<Consumer<BotQuery>>,
    answerer: Arc<Answerer>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let kafka_up = producer.reachable(Duration::from_secs(3)).await;
        readiness.set("kafka", kafka_up);
        let chroma_up = store.heartbeat().await;
        readiness.set("chroma", chroma_up);
        metrics::CHROMA_UP.set(i64::from(chroma_up));
        if let Some(model) = &answerer.model {
            readiness.set("model", model.breaker_state() != model::BreakerState::Open);
        }
        metrics::ASSIGNED_PARTITIONS
            .with_label_values(&[GROUP_MESSAGE_PROCESSOR])
            .set(ingest_consumer.assigned_partitions().len() as i64);
        metrics::ASSIGNED_PARTITIONS
            .with_label_values(&[GROUP_QUERY_PROCESSOR])
            .set(query_consumer.assigned_partitions().len() as i64);
        let ingest = Arc::clone(&ingest_consumer);
        let queries = Arc::clone(&query_consumer);
        let lags = tokio::task::spawn_blocking(move || {
            (
                ingest.lag(Duration::from_secs(2)),
                queries.lag(Duration::from_secs(2)),
            )
        })
        .await
        .unwrap_or((None, None));
        if let Some(lag) = lags.0 {
            metrics::CONSUMER_LAG
                .with_label_values(&[GROUP_MESSAGE_PROCESSOR])
                .set(lag);
        }
        if let Some(lag) = lags.1 {
            metrics::CONSUMER_LAG
                .with_label_values(&[GROUP_QUERY_PROCESSOR])
                .set(lag);
        }
    }
}
