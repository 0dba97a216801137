//! `bot-queries` → answer → `bot-responses`, exactly once (or, by choice, at least once).
//!
//! Each query is answered and its response produced in a Kafka transaction that also commits
//! the query's offset (`send_offsets_to_transaction`). A crash before the commit aborts the
//! transaction — the response never becomes visible to the bot's `read_committed` consumer —
//! and the query is read again; after the commit it is never read again. So every query gets
//! exactly one visible response.
//!
//! `RESPONSES_TRANSACTIONAL=false` is for deployments whose consumers of `bot-responses` cannot
//! read a transactional topic (kafka-python 2.0.2, which the seed's services pin, takes the
//! transaction markers for records). The response is then sent and acknowledged first and the
//! query's offset committed after it: a crash in between answers the query again, and the bot
//! posts that second response nowhere (it finds its earlier reply to the same message).

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::kafka::{Consumer, Producer, Received, TransactionError, TransactionalProducer};
use rtfm_core::{BotQuery, BotResponse};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::answer::Answerer;

/// Where responses go, and how the query's offset follows them.
pub enum Responses {
    /// In one transaction with the query's offset: exactly one visible response.
    Transactional(TransactionalProducer),
    /// Acknowledged first, offset committed after: at least one response.
    AtLeastOnce(Producer),
}

impl Responses {
    /// Sends `responses` for `received` and marks the query done. `Ok(false)`: shut down before
    /// the responses were acknowledged (the query stays uncommitted and comes back).
    async fn send(
        &self,
        consumer: &Consumer<BotQuery>,
        received: &Received<BotQuery>,
        responses: &[BotResponse],
        shutdown: &CancellationToken,
    ) -> Result<bool, TransactionError> {
        match self {
            Responses::Transactional(producer) => producer
                .send_with_offset(consumer, received, responses)
                .await
                .map(|()| true),
            Responses::AtLeastOnce(producer) => {
                for response in responses {
                    if producer
                        .send_until_acked(response, shutdown)
                        .await
                        .is_none()
                    {
                        return Ok(false);
                    }
                }
                consumer.store(received);
                consumer.commit_soon();
                Ok(true)
            }
        }
    }
}

/// The answering loop. Returns `Ok` on shutdown, `Err` when the transactional producer is
/// fenced or broken (the process must restart to recover).
pub async fn run(
    consumer: Arc<Consumer<BotQuery>>,
    producer: Responses,
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
            .send(&consumer, &received, &responses, &shutdown)
            .await;
        drop(answering);
        match sent {
            Ok(false) => break,
            Ok(true) => {
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
