//! Everything that touches librdkafka. Only this module imports `rdkafka` (an architecture
//! invariant: services talk to Kafka through these typed wrappers).
//!
//! - [`config`]: connection settings shared by every binary (`KAFKA_BOOTSTRAP_SERVERS`, …);
//! - [`producer`]: idempotent, `acks=all` producer with typed `send`;
//! - [`consumer`]: at-least-once typed consumer with a dead-letter topic;
//! - [`transaction`]: consume-transform-produce in one Kafka transaction (exactly once);
//! - [`admin`]: create/list/delete/alter our topics (used by `init-topics`), coordinator
//!   readiness, committed offsets of a group;
//! - [`dead_letters`]: reading a dead-letter topic back (what, why, from where);
//! - [`context`]: logs librdkafka events, rebalances and commits through `tracing`.

pub mod admin;
pub mod config;
pub mod consumer;
pub mod context;
pub mod dead_letters;
pub mod producer;
pub mod transaction;

pub use config::{KafkaConfig, OffsetReset};
pub use consumer::{fetch_at, ConsumeError, Consumer, ConsumerOptions, FetchError, Received};
pub use producer::{ProduceError, Producer};
pub use transaction::{TransactionError, TransactionalProducer};

/// Headers of a dead-lettered record.
pub mod dlq_headers {
    pub const ERROR: &str = "error";
    pub const ORIGIN_TOPIC: &str = "origin.topic";
    pub const ORIGIN_PARTITION: &str = "origin.partition";
    pub const ORIGIN_OFFSET: &str = "origin.offset";
}
