//! A librdkafka context that reports through `tracing`: client log lines, errors, rebalances
//! and offset commits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;
use tracing::{debug, error, info, warn};

/// Logs what librdkafka tells us, tagged with the client's role (e.g. `ingest-consumer`).
/// For consumers it also remembers, per assigned partition, where the partition ended when this
/// member got it (see [`RedeliveryMarks`]).
#[derive(Debug, Clone)]
pub struct LoggingContext {
    role: String,
    marks: RedeliveryMarks,
}

impl LoggingContext {
    pub fn new(role: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            marks: RedeliveryMarks::default(),
        }
    }

    pub(crate) fn marks(&self) -> RedeliveryMarks {
        self.marks.clone()
    }
}

/// Per partition, the end of the log (high watermark) when this member was assigned it — or
/// soon after: the rebalance callback runs inside librdkafka's poll, on an async worker, so it
/// only notes the assignment, and the watermark is fetched on a blocking thread when the
/// partition's first record arrives ([`crate::kafka::Consumer`]). Fetched later, the mark can
/// only be higher, which errs on the safe side (more records checked).
///
/// A record below that mark was already in the partition when we got it, so an earlier owner
/// (a killed or rebalanced-away process) may have acted on it without committing: it "may be a
/// redelivery". A record above the mark was produced after we owned the partition, and no one
/// else has seen it. Consumers whose effect is not idempotent (the bot's Discord post) check
/// the world before acting on the first kind.
#[derive(Debug, Clone, Default)]
pub struct RedeliveryMarks {
    inner: Arc<Mutex<HashMap<(String, i32), Mark>>>,
}

/// A partition's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Assigned; nobody asked for its watermark yet.
    Unfetched,
    /// Its watermark is being fetched.
    Fetching,
    At(i64),
}

impl RedeliveryMarks {
    pub(crate) fn may_be_redelivered(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let marks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Unknown partition, or its mark not fetched yet: be safe and check.
        match marks.get(&(topic.to_string(), partition)) {
            Some(Mark::At(mark)) => offset < *mark,
            _ => true,
        }
    }

    /// Whether the caller should fetch `partition`'s watermark: it is assigned and nobody has
    /// asked yet (from now on, someone has).
    pub(crate) fn claim_fetch(&self, topic: &str, partition: i32) -> bool {
        let mut marks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match marks.get_mut(&(topic.to_string(), partition)) {
            Some(slot @ Mark::Unfetched) => {
                *slot = Mark::Fetching;
                true
            }
            _ => false,
        }
    }

    fn assigned(&self, topic: &str, partition: i32) {
        let mut marks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        marks.insert((topic.to_string(), partition), Mark::Unfetched);
    }

    /// Records the fetched mark, if the partition is still assigned and has none.
    pub(crate) fn set(&self, topic: &str, partition: i32, mark: i64) {
        let mut marks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot @ (Mark::Unfetched | Mark::Fetching)) =
            marks.get_mut(&(topic.to_string(), partition))
        {
            *slot = Mark::At(mark);
        }
    }

    fn remove(&self, topic: &str, partition: i32) {
        let mut marks = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        marks.remove(&(topic.to_string(), partition));
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
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                // No network call here (this runs inside a poll, on an async worker): the
                // watermark is fetched off the runtime when the first record arrives.
                for element in partitions.elements() {
                    self.marks.assigned(element.topic(), element.partition());
                }
            }
            Rebalance::Revoke(partitions) => {
                for element in partitions.elements() {
                    self.marks.remove(element.topic(), element.partition());
                }
            }
            Rebalance::Error(_) => {}
        }
    }

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
