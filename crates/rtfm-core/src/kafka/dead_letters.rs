//! Reading a dead-letter topic back: what was dead-lettered, why, and from where. For operators
//! (inspecting a DLQ) and tests (counting dead letters from the topic itself, not a metric).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::config::KafkaConfig;
use crate::kafka::context::LoggingContext;
use crate::kafka::dlq_headers;
use crate::topics::TopicKind;

/// One record of a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original bytes, unchanged.
    pub payload: Vec<u8>,
    pub error: String,
    pub origin_topic: String,
    pub origin_partition: i32,
    pub origin_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterReadError {
    #[error("kafka error while reading `{topic}`: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("`{topic}` did not deliver its records up to the end within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// Everything in `kind`'s dead-letter topic right now: reads every partition from the start up
/// to its end as of the call (a snapshot; no waiting for "quiet").
pub async fn read_all(
    config: &KafkaConfig,
    kind: TopicKind,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, DeadLetterReadError> {
    let topic = config.topics().dead_letter(kind);
    let kafka_error = |source| DeadLetterReadError::Kafka {
        topic: topic.clone(),
        source,
    };
    let consumer: StreamConsumer<LoggingContext> = config
        .client_config("dead-letter-reader")
        .set(
            "group.id",
            format!("rtfm-dlq-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .create_with_context(LoggingContext::new("dead-letter-reader"))
        .map_err(kafka_error)?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Timeout::After(timeout))
        .map_err(kafka_error)?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition.id(), Timeout::After(timeout))
            .map_err(kafka_error)?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment
                .add_partition_offset(&topic, partition.id(), Offset::Offset(low))
                .map_err(kafka_error)?;
        }
    }
    drop(metadata);
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment).map_err(kafka_error)?;
    drop(assignment);
    let deadline = tokio::time::Instant::now() + timeout;
    while !ends.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| DeadLetterReadError::Timeout {
                topic: topic.clone(),
                timeout,
            })?
            .map_err(kafka_error)?;
        let header = |key: &str| -> String {
            message
                .headers()
                .and_then(|headers| {
                    headers
                        .iter()
                        .find(|header| header.key == key)
                        .and_then(|header| header.value)
                        .map(|value| String::from_utf8_lossy(value).into_owned())
                })
                .unwrap_or_default()
        };
        out.push(DeadLetter {
            payload: message.payload().unwrap_or_default().to_vec(),
            error: header(dlq_headers::ERROR),
            origin_topic: header(dlq_headers::ORIGIN_TOPIC),
            origin_partition: header(dlq_headers::ORIGIN_PARTITION).parse().unwrap_or(-1),
            origin_offset: header(dlq_headers::ORIGIN_OFFSET).parse().unwrap_or(-1),
        });
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(out)
}
