//! `discord-messages` → embeddings → Chroma, at least once and idempotent.
//!
//! A batch (up to `INGEST_BATCH_SIZE` records or `INGEST_BATCH_LINGER_MS`) is embedded in one
//! call and written to Chroma in one upsert keyed by `message_id` (plus one delete for delete
//! events); only then are its offsets stored. A crash anywhere re-delivers the batch and the
//! upsert makes the retry harmless.
//!
//! Pipelined: while batch N is being written to Chroma, batch N+1 is consumed and embedded, so
//! the embedder (CPU) and Chroma (I/O, another process) work at the same time. Offsets are
//! still stored in order and only after their own batch's upsert: N's as soon as N is durable,
//! N+1's after N+1's upsert, and each batch's commit starts as soon as they are stored
//! (auto-commit is only the backstop). Vectors computed ahead are kept across Chroma
//! retries, so an outage never re-embeds.
//!
//! While Chroma is down the loop keeps the batch in hand and retries with capped exponential
//! backoff: no offsets stored, nothing dropped, no busy loop, and `/readyz` says not ready. A
//! record Chroma rejects for good (4xx) is isolated and dead-lettered with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtfm_core::kafka::{Consumer, Received};
use rtfm_core::redact::redact;
use rtfm_core::telemetry::Readiness;
use rtfm_core::DiscordMessage;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::embedding::{EmbedError, Embedder};
use crate::gate::Gate;
use crate::index::metadata_for;
use crate::metrics;
use crate::store::{StoreError, StoredMessage, VectorStore};

/// `IngestSettings`' defaults, defined once (the flags' defaults and `Default` use them).
pub mod defaults {
    pub const BATCH_SIZE: usize = 128;
    pub const LINGER_MS: u64 = 200;
    pub const MAX_BACKOFF_SECS: u64 = 10;
}

/// Batching knobs.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestSettings {
    /// Records per embed + upsert (Chroma's guidance: 50–250).
    #[arg(
        long = "ingest-batch-size",
        env = "INGEST_BATCH_SIZE",
        default_value_t = defaults::BATCH_SIZE
    )]
    pub batch_size: usize,
    /// How long to wait for a batch to fill.
    #[arg(
        long = "ingest-batch-linger-ms",
        env = "INGEST_BATCH_LINGER_MS",
        default_value_t = defaults::LINGER_MS
    )]
    pub linger_ms: u64,
    /// Longest pause between retries while Chroma is down.
    #[arg(
        long = "ingest-max-backoff-secs",
        env = "INGEST_MAX_BACKOFF_SECS",
        default_value_t = defaults::MAX_BACKOFF_SECS
    )]
    pub max_backoff_secs: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_size: defaults::BATCH_SIZE,
            linger_ms: defaults::LINGER_MS,
            max_backoff_secs: defaults::MAX_BACKOFF_SECS,
        }
    }
}

pub fn stored_message(message: &DiscordMessage) -> StoredMessage {
    StoredMessage {
        id: message.message_id,
        // Again here: records published by anything but our bot (or before it redacted).
        document: redact(&message.content).into_owned(),
        metadata: metadata_for(message),
    }
}

/// Why a batch could not be made durable.
enum Interrupted {
    Shutdown,
}

/// Embeds and writes messages; shared by the service loop and `processor eval`.
#[derive(Clone)]
pub struct Indexer {
    pub store: Arc<dyn VectorStore>,
    pub embedder: Embedder,
    /// The community's choices: what they keep out is never written.
    pub gate: Gate,
}

impl Indexer {
    /// What `batch` amounts to under the community's choices as read so far.
    pub fn plan(&self, batch: &[&DiscordMessage]) -> Plan {
        plan_admitted(batch, |message| match self.gate.admits_record(message) {
            Ok(()) => true,
            Err(refusal) => {
                metrics::REFUSED
                    .with_label_values(&[refusal.as_str()])
                    .inc();
                debug!(message_id = %message.message_id, reason = refusal.as_str(), "not indexed: the community's choice");
                false
            }
        })
    }

    /// Embeds and upserts `messages` (one embedding call, one upsert).
    pub async fn upsert(&self, messages: &[&DiscordMessage]) -> Result<(), IndexError> {
        let vectors = self.embed(messages).await?;
        self.write(messages, &vectors).await
    }

    /// Embeds the messages' contents, in order.
    pub async fn embed(&self, messages: &[&DiscordMessage]) -> Result<Vec<Vec<f32>>, IndexError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = messages
            .iter()
            .map(|message| redact(&message.content).into_owned())
            .collect();
        let started = Instant::now();
        let vectors = self.embedder.embed(texts).await?;
        metrics::EMBED_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(vectors)
    }

    /// Upserts already embedded messages.
    pub async fn write(
        &self,
        messages: &[&DiscordMessage],
        vectors: &[Vec<f32>],
    ) -> Result<(), IndexError> {
        if messages.is_empty() {
            return Ok(());
        }
        let records: Vec<StoredMessage> = messages
            .iter()
            .map(|message| stored_message(message))
            .collect();
        let started = Instant::now();
        self.store.upsert(&records, vectors).await?;
        metrics::UPSERT_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IndexError {
    /// The embedding provider or Chroma said no for good: the batch is split record by record
    /// and each record still refused alone is dead-lettered with that reason. Everything else
    /// (down, slow, rate-limited) holds the batch and retries.
    fn is_rejection(&self) -> bool {
        match self {
            IndexError::Embed(err) => err.is_permanent(),
            IndexError::Store(err) => matches!(err, StoreError::Rejected(_)),
        }
    }
}

/// A batch consumed ahead, with its upserts' vectors if embedding them worked.
struct Prefetched {
    batch: Vec<Received<DiscordMessage>>,
    /// The records (indexes into `batch`) the vectors are for.
    upserts: Vec<usize>,
    vectors: Option<Vec<Vec<f32>>>,
}

/// Consumes the next batch and embeds what it will upsert (best effort: a failed embedding is
/// retried by [`apply`], which knows how to wait and isolate).
async fn prefetch(
    consumer: &Consumer<DiscordMessage>,
    indexer: &Indexer,
    settings: &IngestSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Prefetched> {
    let linger = Duration::from_millis(settings.linger_ms);
    let batch = consumer
        .recv_batch(settings.batch_size.max(1), linger, shutdown)
        .await
        // Transient errors are absorbed by the consumer; this one ends the process.
        .map_err(|err| anyhow::Error::new(err).context("while consuming discord-messages"))?;
    let records: Vec<&DiscordMessage> = batch.iter().map(|received| &received.record).collect();
    // The choices as read so far; `apply` plans again after the barrier and re-embeds if a
    // choice made meanwhile changed what is upserted.
    let plan = indexer.plan(&records);
    let upserts: Vec<&DiscordMessage> = plan.upserts.iter().map(|&index| records[index]).collect();
    let vectors = match indexer.embed(&upserts).await {
        Ok(vectors) => Some(vectors),
        Err(err) => {
            debug!(error = %err, "embedding ahead failed; the batch will retry it");
            None
        }
    };
    Ok(Prefetched {
        batch,
        upserts: plan.upserts,
        vectors,
    })
}

/// The ingestion loop. Returns when `shutdown` is cancelled, after committing what is durable.
pub async fn run(
    consumer: Arc<Consumer<DiscordMessage>>,
    indexer: Indexer,
    settings: IngestSettings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut current = prefetch(&consumer, &indexer, &settings, &shutdown).await?;
    while !current.batch.is_empty() {
        // Write this batch while the next one is consumed and embedded.
        let next = prefetch(&consumer, &indexer, &settings, &shutdown);
        tokio::pin!(next);
        let mut ahead = None;
        let applied = {
            let applying = apply(
                &consumer,
                &indexer,
                &current.batch,
                (current.upserts.clone(), current.vectors.take()),
                &settings,
                &readiness,
                &shutdown,
            );
            tokio::pin!(applying);
            loop {
                tokio::select! {
                    applied = &mut applying => break applied,
                    fetched = &mut next, if ahead.is_none() => ahead = Some(fetched),
                }
            }
        };
        match applied {
            Ok(()) => {
                for received in &current.batch {
                    consumer.store(received);
                }
                consumer.commit_soon();
                metrics::BATCHES.inc();
            }
            Err(Interrupted::Shutdown) => {
                info!(records = current.batch.len(), "shutdown while the index was unavailable; the batch will be re-read after restart");
                break;
            }
        }
        current = match ahead {
            Some(fetched) => fetched?,
            None => next.await?,
        };
    }
    if let Err(err) = consumer.commit().await {
        warn!(error = %err, "final offset commit failed; the last records may be re-read (harmless)");
    }
    Ok(())
}

mod plan;
mod write;
pub use plan::{plan, plan_admitted, Plan};
use write::apply;

#[cfg(test)]
mod tests;
