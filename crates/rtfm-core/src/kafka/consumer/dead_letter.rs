//! Writing records to the consumer's dead-letter topic (`<topic>.dlq`), with the reason and
//! the record's origin in headers; retried until the broker acknowledges, or shutdown.

use std::time::Duration;

use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::{Consumer, Received};
use crate::backoff::Backoff;
use crate::kafka::dlq_headers;
use crate::schema::{Record, SchemaError};
use crate::telemetry::metrics;

impl<T: Record> Consumer<T> {
    /// Writes a decoded record that its consumer cannot process (e.g. the store rejects it for
    /// good) to the DLQ with `reason`. Returns false if `shutdown` fired first; then the caller
    /// must not store its offset.
    pub async fn dead_letter_record(
        &self,
        received: &Received<T>,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        let payload = received.record.encode();
        let origin = Origin {
            topic: &received.topic,
            partition: received.partition,
            offset: received.offset,
        };
        self.write_dead_letter(
            origin,
            Some(received.record.key().as_str()),
            &payload,
            reason,
            shutdown,
        )
        .await
    }

    /// Writes one undecodable record to the DLQ, retrying until the broker acks it. Returns
    /// false if `shutdown` fired first (the offset is then left unstored).
    pub(super) async fn dead_letter(
        &self,
        message: &OwnedMessage,
        err: &SchemaError,
        shutdown: &CancellationToken,
    ) -> bool {
        let key = message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned());
        let origin = Origin {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let payload = message.payload().unwrap_or_default();
        self.write_dead_letter(origin, key.as_deref(), payload, &err.to_string(), shutdown)
            .await
    }

    async fn write_dead_letter(
        &self,
        origin: Origin<'_>,
        key: Option<&str>,
        payload: &[u8],
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        warn!(
            role = %self.role,
            topic = origin.topic,
            partition = origin.partition,
            offset = origin.offset,
            error = %reason,
            "record sent to the dead-letter topic"
        );
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: dlq_headers::ERROR,
                    value: Some(reason),
                })
                .insert(Header {
                    key: dlq_headers::ORIGIN_TOPIC,
                    value: Some(origin.topic),
                })
                .insert(Header {
                    key: dlq_headers::ORIGIN_PARTITION,
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: dlq_headers::ORIGIN_OFFSET,
                    value: Some(offset.as_str()),
                });
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return false,
                sent = self.dead_letters.send_raw(&self.dead_letter_topic, key, payload, Some(headers)) => sent,
            };
            match sent {
                Ok(_) => {
                    metrics::DEAD_LETTERED
                        .with_label_values(&[self.topic.as_str()])
                        .inc();
                    return true;
                }
                Err(err) => {
                    error!(role = %self.role, error = %err, "could not write to the dead-letter topic; retrying");
                    if !backoff.wait(shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// Where a dead-lettered record came from.
#[derive(Clone, Copy)]
struct Origin<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}
