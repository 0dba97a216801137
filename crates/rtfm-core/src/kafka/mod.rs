//! Everything that touches librdkafka. Only this module imports `rdkafka` (an architecture
//! invariant: services talk to Kafka through these typed wrappers).
//!
//! - [`config`]: connection settings shared by every binary (`KAFKA_BOOTSTRAP_SERVERS`, …);
//! - [`producer`]: idempotent, `acks=all` producer with typed `send`;
//! - [`consumer`]: at-least-once typed consumer with a dead-letter topic;
//! - [`transaction`]: consume-transform-produce in one Kafka transaction (exactly once);
//! - [`admin`]: create/list/delete/alter our topics (used by `init-topics`);
//! - [`group`]: coordinator readiness, committed offsets of a group;
//! - [`follow`]: reading `rtfm-control` into the community's choices, with a barrier;
//! - [`fetch`]: reading back the record at one offset (`kafka-smoke`, tests);
//! - [`dead_letters`]: reading a dead-letter topic back (what, why, from where);
//! - [`error`]: the client's errors behind a type of ours ([`ClientError`]);
//! - `context` (crate-private): logs librdkafka events, rebalances and commits through `tracing`.

pub mod admin;
pub mod config;
pub mod consumer;
pub(crate) mod context;
pub mod dead_letters;
pub mod error;
pub mod fetch;
pub mod follow;
pub mod group;
pub mod producer;
pub mod transaction;

pub use config::{Compression, KafkaConfig, OffsetReset};
pub use consumer::{ConsumeError, Consumer, ConsumerOptions, Received};
pub use error::ClientError;
pub use fetch::{fetch_at, FetchError};
pub use follow::{Follower, NotCaughtUp};
pub use producer::{Delivered, ProduceError, Producer};
pub use transaction::{TransactionError, TransactionalProducer};

/// Headers of a dead-lettered record.
pub mod dlq_headers {
    pub const ERROR: &str = "error";
    pub const ORIGIN_TOPIC: &str = "origin.topic";
    pub const ORIGIN_PARTITION: &str = "origin.partition";
    pub const ORIGIN_OFFSET: &str = "origin.offset";
}

/// Runs a blocking librdkafka call off the async runtime.
pub(crate) async fn blocking<T, F>(call: F) -> Result<T, ClientError>
where
    F: FnOnce() -> Result<T, rdkafka::error::KafkaError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(ClientError::from),
        // The closure panicked or the runtime is shutting down.
        Err(_) => Err(ClientError::canceled()),
    }
}
