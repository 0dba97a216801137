//! `bot-queries` → answer → `bot-responses`, exactly once.
//!
//! Each query is answered and its response produced in a Kafka transaction that also commits
//! the query's offset (`send_offsets_to_transaction`). A crash before the commit aborts the
//! transaction — the response never becomes visible to the bot's `read_committed` consumer —
//! and the query is read again; after the commit it is never read again. So every query gets
//! exactly one visible response.

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::kafka::{Consumer, TransactionError, TransactionalProducer};
use rtfm_core::{BotQuery, BotResponse};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::answer::Answerer;

/// The answering loop. Returns `Ok` on shutdown, `Err` when the transactional producer is
/// fenced or broken (the process must restart to recover).
pub async fn run(
    consumer: Arc<Consumer<BotQuery>>,
    producer: TransactionalProducer,
    answerer: Arc<Answerer>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let received = match consumer.recv(&shutdown).await {
            Ok(Some(received)) => received,
            Ok(None) => break,
            // Transient errors are absorbed by the consumer; this one ends the process.
            Err(err) => return Err(anyhow::Error::new(err).context("while consuming bot-queries")),
        };
        info!(query_id = %received.record.query_id, partition = received.partition, offset = received.offset, "query received");
        // Ingestion's embedding holds back until the response is committed.
        let answering = answerer.retriever.embedder.answering();
        let started = std::time::Instant::now();
        let responses: Vec<BotResponse> = answerer
            .respond(&received.record)
            .await
            .into_iter()
            .collect();
        let answered = started.elapsed();
        crate::metrics::QUERY_STAGE_SECONDS
            .with_label_values(&["answer"])
            .observe(answered.as_secs_f64());
        let sent = producer
            .send_with_offset(&consumer, &received, &responses)
            .await;
        drop(answering);
        match sent {
            Ok(()) => {
                crate::metrics::QUERY_STAGE_SECONDS
                    .with_label_values(&["commit"])
                    .observe((started.elapsed() - answered).as_secs_f64());
                crate::metrics::QUERY_SECONDS.observe(started.elapsed().as_secs_f64());
            }
            Err(TransactionError::Aborted(err)) => {
                warn!(query_id = %received.record.query_id, error = %err, "transaction aborted; the query will be answered again");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(err) => {
                return Err(
                    anyhow::Error::new(err).context("while committing a response transaction")
                )
            }
        }
    }
    Ok(())
}
