//! Reading back the one record at a given partition and offset (tools and tests).

use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::config::KafkaConfig;
use crate::kafka::context::LoggingContext;
use crate::kafka::error::ClientError;
use crate::schema::{Record, SchemaError};

/// Reads the record at `partition`/`offset` of `T`'s topic with a throw-away consumer (no group
/// commits). Used by `kafka-smoke` and tests to read back exactly what was produced.
pub async fn fetch_at<T: Record>(
    config: &KafkaConfig,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<T, FetchError> {
    let topic = config.topics().name(T::TOPIC);
    let consumer: StreamConsumer<LoggingContext> = config
        .client_config("fetch-at")
        .set("group.id", format!("rtfm-fetch-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(LoggingContext::new("fetch-at"))
        .map_err(|err| FetchError::Kafka(err.into()))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, partition, Offset::Offset(offset))
        .map_err(|err| FetchError::Kafka(err.into()))?;
    consumer
        .assign(&assignment)
        .map_err(|err| FetchError::Kafka(err.into()))?;
    drop(assignment);
    let message = tokio::time::timeout(timeout, consumer.recv())
        .await
        .map_err(|_| FetchError::Timeout {
            topic: topic.clone(),
            partition,
            offset,
            timeout,
        })?
        .map_err(|err| FetchError::Kafka(err.into()))?
        .detach();
    T::decode(message.payload().unwrap_or_default()).map_err(FetchError::Decode)
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("kafka error: {0}")]
    Kafka(ClientError),
    #[error("nothing arrived from {topic}[{partition}]@{offset} within {timeout:?}")]
    Timeout {
        topic: String,
        partition: i32,
        offset: i64,
        timeout: Duration,
    },
    #[error("the record read back does not decode: {0}")]
    Decode(SchemaError),
}
