//! Writing one batch: the barrier on the community's choices, the upsert and deletes through
//! outages, a second look after the write (a choice that arrived meanwhile), and isolating a
//! record the store rejects for good.

use std::time::Duration;

use rtfm_core::backoff::Backoff;
use rtfm_core::ids::MessageId;
use rtfm_core::kafka::{Consumer, Received};
use rtfm_core::telemetry::Readiness;
use rtfm_core::DiscordMessage;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{IndexError, Indexer, IngestSettings, Interrupted, Plan};
use crate::metrics;
use crate::store::StoreError;

/// Makes one batch durable in Chroma, retrying through outages.
pub(super) async fn apply(
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
