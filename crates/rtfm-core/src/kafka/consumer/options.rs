//! How a consumer is set up, what it hands out, and how it fails.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::kafka::config::OffsetReset;
use crate::kafka::error::ClientError;

/// How a consumer joins its group.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Base group name (the topic suffix is appended).
    pub group: String,
    pub offset_reset: OffsetReset,
    /// Offsets are committed inside a producer transaction instead of by auto-commit.
    pub transactional: bool,
    /// Role for logs and the Kafka `client.id`.
    pub role: String,
    /// Static group membership (`group.instance.id`): a restarted instance takes its partitions
    /// back at once instead of waiting for the dead member's session to time out.
    pub instance_id: Option<String>,
    /// How often librdkafka commits stored offsets in the background (`auto.commit.interval.ms`;
    /// loops that call [`Consumer::commit_soon`] after each batch only need it as a backstop).
    pub auto_commit_interval: Duration,
}

impl ConsumerOptions {
    pub fn new(group: &str, role: &str) -> Self {
        Self {
            group: group.to_string(),
            offset_reset: OffsetReset::Earliest,
            transactional: false,
            role: role.to_string(),
            instance_id: None,
            auto_commit_interval: Duration::from_secs(1),
        }
    }

    pub fn static_member(mut self, instance_id: &str) -> Self {
        self.instance_id = Some(instance_id.to_string());
        self
    }

    pub fn offset_reset(mut self, offset_reset: OffsetReset) -> Self {
        self.offset_reset = offset_reset;
        self
    }

    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }

    pub fn auto_commit_every(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }
}

/// A decoded record and where it came from.
#[derive(Debug, Clone)]
pub struct Received<T> {
    pub record: T,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record was already in its partition when this member was assigned it, so an
    /// earlier owner may have acted on it without committing (the high watermark at
    /// assignment is remembered per partition by the client's context).
    pub maybe_redelivered: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("could not create the Kafka consumer for {bootstrap}: {source}")]
    Create {
        bootstrap: String,
        source: ClientError,
    },
    #[error("could not subscribe to `{topic}`: {source}")]
    Subscribe { topic: String, source: ClientError },
    /// Kafka stopped this consumer for good: typically another live process joined the group
    /// with the same static membership id (`group.instance.id`). The process must stop; it
    /// would otherwise run without partitions and do nothing.
    #[error(
        "the {consumer} consumer was stopped by Kafka: {source} \
         (\"fenced\" means another live process uses the same instance id: give each process \
         its own PROCESSOR_INSTANCE_ID, or leave it unset for a unique default)"
    )]
    Fatal {
        /// Its role and instance id, e.g. "`ingest` (instance id `host-0`)".
        consumer: String,
        source: ClientError,
    },
}

/// Fatal consumer errors end the consumer; everything else (a broker restarting, a
/// connection refused) librdkafka recovers from by itself.
pub(super) fn is_fatal(err: &KafkaError) -> bool {
    matches!(err, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId)
        )
}
