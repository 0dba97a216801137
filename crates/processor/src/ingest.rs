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

use rtfm_core::backoff::Backoff;
use rtfm_core::ids::MessageId;
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

/// Makes one batch durable in Chroma, retrying through outages.
async fn apply(
    consumer: &Consumer<DiscordMessage>,
    indexer: &Indexer,
    batch: &[Received<DiscordMessage>],
    (mut embedded_for, mut vectors): (Vec<usize>, Option<Vec<Vec<f32>>>),
    settings: &IngestSettings,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Result<(), Interrupted> {
    let records: Vec<&DiscordMessage> = batch.iter().map(|received| &received.record).collect();
    let mut backoff = Backoff::new(
        Duration::from_millis(250),
        Duration::from_secs(settings.max_backoff_secs.max(1)),
    );
    loop {
        // Every choice acknowledged before this attempt binds it (a forget-me that raced the
        // batch keeps the member's messages out); unknown choices are an outage, not a pass.
        if let Err(err) = indexer.gate.barrier().await {
            readiness.set_reason(
                "ingest",
                false,
                Some(format!("holding {} records: {err}", batch.len())),
            );
            warn!(error = %err, "the community's choices are not known to be current; holding the batch");
            if !backoff.wait(shutdown).await {
                return Err(Interrupted::Shutdown);
            }
            continue;
        }
        let plan = indexer.plan(&records);
        if plan.upserts != embedded_for {
            // Vectors of another plan (a choice arrived meanwhile): embedded again.
            vectors = None;
            embedded_for.clone_from(&plan.upserts);
        }
        debug!(
            upserts = plan.upserts.len(),
            deletes = plan.deletes.len(),
            skipped = plan.skipped,
            refused = plan.refused,
            "applying batch"
        );
        let upserts: Vec<&DiscordMessage> =
            plan.upserts.iter().map(|&index| records[index]).collect();
        let result = async {
            let ready = match vectors.take() {
                Some(ready) => ready,
                None => indexer.embed(&upserts).await?,
            };
            // Kept for the next attempt if Chroma fails: an outage never re-embeds.
            let ready: &[Vec<f32>] = vectors.insert(ready);
            indexer.write(&upserts, ready).await?;
            indexer
                .store
                .delete(&plan.deletes)
                .await
                .map_err(IndexError::from)
        }
        .await;
        match result {
            Ok(()) => {
                if recheck(indexer, &records, &plan, shutdown).await.is_none() {
                    return Err(Interrupted::Shutdown);
                }
                readiness.set("chroma", true);
                readiness.set("ingest", true);
                metrics::CHROMA_UP.set(1);
                metrics::HELD_RECORDS.with_label_values(&["chroma"]).set(0);
                metrics::HELD_RECORDS
                    .with_label_values(&["embedding"])
                    .set(0);
                metrics::INGESTED
                    .with_label_values(&["upserted"])
                    .inc_by(plan.upserts.len() as u64);
                metrics::INGESTED
                    .with_label_values(&["deleted"])
                    .inc_by(plan.deletes.len() as u64);
                metrics::INGESTED
                    .with_label_values(&["skipped"])
                    .inc_by(plan.skipped as u64);
                info!(
                    records = batch.len(),
                    upserted = plan.upserts.len(),
                    deleted = plan.deletes.len(),
                    "batch indexed"
                );
                return Ok(());
            }
            Err(err) if err.is_rejection() => {
                warn!(error = %err, "Chroma rejected the batch; isolating the bad records");
                return isolate(consumer, indexer, batch, &plan, readiness, shutdown).await;
            }
            Err(err) => {
                let waiting_for = match &err {
                    IndexError::Embed(_) => "embedding",
                    IndexError::Store(_) => {
                        readiness.set("chroma", false);
                        metrics::CHROMA_UP.set(0);
                        "chroma"
                    }
                };
                metrics::HELD_RECORDS
                    .with_label_values(&[waiting_for])
                    .set(batch.len() as i64);
                readiness.set_reason(
                    "ingest",
                    false,
                    Some(format!(
                        "holding {} records, waiting for {waiting_for}: {err}",
                        batch.len()
                    )),
                );
                warn!(error = %err, waiting_for, "dependency unavailable; holding the batch and retrying");
                if !backoff.wait(shutdown).await {
                    return Err(Interrupted::Shutdown);
                }
            }
        }
    }
}

/// After a batch was written: a choice made while it was embedded or written (a forget-me, a
/// channel excluded) takes out again what it refuses, before the offsets are stored. `None` on
/// shutdown.
async fn recheck(
    indexer: &Indexer,
    records: &[&DiscordMessage],
    written: &Plan,
    shutdown: &CancellationToken,
) -> Option<()> {
    if written.upserts.is_empty() || indexer.gate.barrier().await.is_err() {
        // Not knowing is covered by the removal's second sweep and the filter at query time.
        return Some(());
    }
    let now = indexer.plan(records);
    let late: Vec<MessageId> = written
        .upserts
        .iter()
        .map(|&index| records[index].message_id)
        .filter(|id| now.deletes.contains(id))
        .collect();
    if late.is_empty() {
        return Some(());
    }
    info!(
        records = late.len(),
        "a choice arrived while the batch was written; taking those out again"
    );
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    while let Err(err) = indexer.store.delete(&late).await {
        warn!(error = %err, "could not take out what a choice refuses; retrying");
        if !backoff.wait(shutdown).await {
            return None;
        }
    }
    Some(())
}

/// Retries a rejected batch record by record; each one Chroma still rejects goes to the DLQ.
async fn isolate(
    consumer: &Consumer<DiscordMessage>,
    indexer: &Indexer,
    batch: &[Received<DiscordMessage>],
    plan: &Plan,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Result<(), Interrupted> {
    for &index in &plan.upserts {
        let received = &batch[index];
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            match indexer.upsert(&[&received.record]).await {
                Ok(()) => {
                    // Counted like a batch's: the record is in the index.
                    metrics::INGESTED.with_label_values(&["upserted"]).inc();
                    break;
                }
                Err(err) if err.is_rejection() => {
                    if !consumer
                        .dead_letter_record(received, &err.to_string(), shutdown)
                        .await
                    {
                        return Err(Interrupted::Shutdown);
                    }
                    metrics::INGESTED
                        .with_label_values(&["dead_lettered"])
                        .inc();
                    break;
                }
                Err(_) => {
                    if !backoff.wait(shutdown).await {
                        return Err(Interrupted::Shutdown);
                    }
                }
            }
        }
    }
    // A delete by ids cannot be wrong about one record (deleting an id that is not there is
    // not an error): a refusal is Chroma's configuration or state, so it is retried until it
    // clears, never dropped — a member's deleted message must not stay quotable.
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        match indexer.store.delete(&plan.deletes).await {
            Ok(()) => {
                readiness.set("ingest", true);
                return Ok(());
            }
            Err(err) => {
                if let StoreError::Rejected(reason) = &err {
                    readiness.set_reason(
                        "ingest",
                        false,
                        Some(format!(
                            "Chroma refuses to delete {} messages ({reason}); retrying",
                            plan.deletes.len()
                        )),
                    );
                }
                warn!(error = %err, deletes = plan.deletes.len(), "delete failed; retrying (deleted messages are never left behind)");
                if !backoff.wait(shutdown).await {
                    return Err(Interrupted::Shutdown);
                }
            }
        }
    }
}

mod plan;
pub use plan::{plan, plan_admitted, Plan};

#[cfg(test)]
mod tests;
