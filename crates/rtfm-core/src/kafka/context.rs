//! A librdkafka context that reports through `tracing`: client log lines, errors, rebalances
//! and offset commits.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;
use tracing::{debug, error, info, warn};

/// Logs what librdkafka tells us, tagged with the client's role (e.g. `ingest-consumer`).
#[derive(Debug, Clone)]
pub struct LoggingContext {
    role: String,
}

impl LoggingContext {
    pub fn new(role: impl Into<String>) -> Self {
        Self { role: role.into() }
    }
}

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let role = &self.role;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(role, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => warn!(role, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(role, facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => debug!(role, facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors (broker restarting, connection refused) are retried by librdkafka
        // itself; they are worth a warning, not a crash.
        warn!(role = %self.role, error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for LoggingContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                info!(role = %self.role, partitions = %describe(partitions), "partitions assigned")
            }
            Rebalance::Revoke(partitions) => {
                info!(role = %self.role, partitions = %describe(partitions), "partitions revoked")
            }
            Rebalance::Error(err) => error!(role = %self.role, error = %err, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(role = %self.role, offsets = %describe(offsets), "offsets committed"),
            // Nothing new was stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => warn!(role = %self.role, error = %err, "offset commit failed"),
        }
    }
}

/// `topic[partition]@offset, …` for logs.
pub(crate) fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|element| match element.offset().to_raw() {
            Some(offset) if offset >= 0 => {
                format!("{}[{}]@{}", element.topic(), element.partition(), offset)
            }
            _ => format!("{}[{}]", element.topic(), element.partition()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
