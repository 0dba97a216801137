//! The producer every service uses: no acknowledged record is ever lost.
//!
//! `acks=all` + `enable.idempotence=true` make retries safe (no duplicates, no reordering within
//! a partition); `send` resolves only when the broker has acknowledged the record, so a caller
//! that got `Ok` may act on it (store an input offset, reply to a user).

use std::time::Duration;

use crate::kafka::error::ClientError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::kafka::config::KafkaConfig;
use crate::kafka::context::LoggingContext;
use crate::schema::Record;
use crate::topics::Topics;

/// How long librdkafka keeps retrying one record before reporting it failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("could not create the Kafka producer for {bootstrap}: {source}")]
    Create {
        bootstrap: String,
        source: ClientError,
    },
    #[error("record for `{topic}` was not acknowledged by the broker: {source}")]
    Delivery { topic: String, source: ClientError },
}

/// Typed, idempotent producer. Cheap to clone (shares one librdkafka client).
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<LoggingContext>,
    topics: Topics,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("topics", &self.topics)
            .finish()
    }
}

impl Producer {
    pub fn new(config: &KafkaConfig, role: &str) -> Result<Self, ProduceError> {
        let inner = config
            .client_config(role)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", config.compression.as_str())
            // A question is one small record that someone is waiting on: send it now. Bursts
            // (a backfill) still batch, behind the requests in flight.
            .set("linger.ms", "0")
            .set(
                "delivery.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .create_with_context(LoggingContext::new(role))
            .map_err(|source| ProduceError::Create {
                bootstrap: config.bootstrap_servers.clone(),
                source: source.into(),
            })?;
        Ok(Self {
            inner,
            topics: config.topics(),
        })
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Sends one record to its type's topic, keyed by channel, and waits for the broker's ack.
    pub async fn send<T: Record>(&self, record: &T) -> Result<Delivered, ProduceError> {
        let topic = self.topics.name(T::TOPIC);
        self.send_raw(&topic, Some(record.key().as_str()), &record.encode(), None)
            .await
    }

    /// Like [`Producer::send`], but a delivery that fails (the broker was down longer than the
    /// delivery timeout) is sent again, with backoff, until the broker acknowledges it or
    /// `shutdown` fires (then `None`: the caller must not treat the record as published).
    ///
    /// For records that exist nowhere else (a gateway event cannot be fetched again). A retry
    /// after an ambiguous failure may write the record twice; every consumer of our topics is
    /// idempotent by id.
    pub async fn send_until_acked<T: Record>(
        &self,
        record: &T,
        shutdown: &CancellationToken,
    ) -> Option<Delivered> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return None,
                sent = self.send(record) => sent,
            };
            match sent {
                Ok(delivered) => return Some(delivered),
                Err(err) => {
                    warn!(error = %err, "record not acknowledged; sending it again");
                    if !backoff.wait(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Sends raw bytes (dead letters, tests that need malformed input).
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivered, ProduceError> {
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        match self
            .inner
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
        {
            Ok(delivery) => {
                debug!(
                    topic,
                    partition = delivery.partition,
                    offset = delivery.offset,
                    "record acknowledged"
                );
                Ok(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err((source, _message)) => Err(ProduceError::Delivery {
                topic: topic.to_string(),
                source: source.into(),
            }),
        }
    }

    /// Waits until every queued record is acknowledged, at most `timeout` (off the async
    /// runtime).
    pub async fn flush(&self, timeout: Duration) -> Result<(), ClientError> {
        let inner = self.inner.clone();
        crate::kafka::blocking(move || inner.flush(Timeout::After(timeout))).await
    }

    /// Like [`Producer::broker_reachable`], off the async runtime (the metadata call blocks).
    pub async fn reachable(&self, timeout: Duration) -> bool {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || probe.broker_reachable(timeout))
            .await
            .unwrap_or(false)
    }

    /// Whether the broker answers a metadata request within `timeout` (for `/readyz`).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.inner
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .is_ok()
    }
}
