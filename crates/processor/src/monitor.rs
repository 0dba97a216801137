//! What the processor checks every few seconds for `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::kafka::{Consumer, Producer};
use rtfm_core::telemetry::Readiness;
use rtfm_core::topics::{GROUP_MESSAGE_PROCESSOR, GROUP_QUERY_PROCESSOR};
use rtfm_core::{BotQuery, DiscordMessage};

use crate::answer::Answerer;
use crate::store::VectorStore;
use crate::{metrics, model};

/// What the processor checks every few seconds: Kafka reachability, Chroma heartbeat, breaker
/// state, assigned partitions, consumer lag.
pub(crate) struct Monitor {
    pub producer: Producer,
    pub store: Arc<dyn VectorStore>,
    pub ingest_consumer: Arc<Consumer<DiscordMessage>>,
    pub query_consumer: Arc<Consumer<BotQuery>>,
    pub answerer: Arc<Answerer>,
    pub readiness: Readiness,
}

impl Monitor {
    pub async fn check(&self) {
        let kafka_up = self.producer.reachable(Duration::from_secs(3)).await;
        self.readiness.set("kafka", kafka_up);
        let chroma_up = self.store.heartbeat().await;
        self.readiness.set("chroma", chroma_up);
        metrics::CHROMA_UP.set(i64::from(chroma_up));
        if let Some(model) = &self.answerer.model {
            self.readiness
                .set("model", model.breaker_state() != model::BreakerState::Open);
        }
        metrics::ASSIGNED_PARTITIONS
            .with_label_values(&[GROUP_MESSAGE_PROCESSOR])
            .set(self.ingest_consumer.assigned_partitions().len() as i64);
        metrics::ASSIGNED_PARTITIONS
            .with_label_values(&[GROUP_QUERY_PROCESSOR])
            .set(self.query_consumer.assigned_partitions().len() as i64);
        let ingest = Arc::clone(&self.ingest_consumer);
        let queries = Arc::clone(&self.query_consumer);
        let lags = tokio::task::spawn_blocking(move || {
            (
                ingest.lag(Duration::from_secs(2)),
                queries.lag(Duration::from_secs(2)),
            )
        })
        .await
        .unwrap_or((None, None));
        for (group, lag) in [
            (GROUP_MESSAGE_PROCESSOR, lags.0),
            (GROUP_QUERY_PROCESSOR, lags.1),
        ] {
            if let Some(lag) = lag {
                metrics::CONSUMER_LAG.with_label_values(&[group]).set(lag);
            }
        }
    }
}
