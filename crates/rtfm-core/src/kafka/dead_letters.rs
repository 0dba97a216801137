//! Reading a topic back as a snapshot: a dead-letter topic (what was dead-lettered, why, and
//! from where) or any of our topics' committed records. For operators (inspecting a DLQ) and
//! tests (counting from the topic itself, not a metric; no "wait until quiet").

use std::collections::HashMap;
use std::time::Duration;

use crate::kafka::error::ClientError;
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
    Kafka { topic: String, source: ClientError },
    #[error("`{topic}` did not deliver its records up to the end within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// Everything in `kind`'s dead-letter topic right now (a snapshot; see [`read_snapshot`]).
pub async fn read_all(
    config: &KafkaConfig,
    kind: TopicKind,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, DeadLetterReadError> {
    let topic = config.topics().dead_letter(kind);
    Ok(read_snapshot(config, &topic, timeout)
        .await?
        .into_iter()
        .map(|record| {
            let header = |key: &str| record.headers.get(key).cloned().unwrap_or_default();
            DeadLetter {
                error: header(dlq_headers::ERROR),
                origin_topic: header(dlq_headers::ORIGIN_TOPIC),
                origin_partition: header(dlq_headers::ORIGIN_PARTITION).parse().unwrap_or(-1),
                origin_offset: header(dlq_headers::ORIGIN_OFFSET).parse().unwrap_or(-1),
                payload: record.payload,
            }
        })
        .collect())
}

/// Every committed record of `kind`'s topic right now, decoded (undecodable ones are skipped:
/// they are in the dead-letter topic).
pub async fn read_records<T: crate::schema::Record>(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<Vec<(i32, i64, T)>, DeadLetterReadError> {
    let topic = config.topics().name(T::TOPIC);
    Ok(read_snapshot(config, &topic, timeout)
        .await?
        .into_iter()
        .filter_map(|record| {
            T::decode(&record.payload)
                .ok()
                .map(|decoded| (record.partition, record.offset, decoded))
        })
        .collect())
}

/// One raw record.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads every partition of `topic` from its start up to its end as of the call, as a
/// `read_committed` consumer sees it (records of aborted transactions are skipped; the reader
/// is done with a partition when its position reaches the end, which also passes transaction
/// markers). A snapshot: no waiting for "quiet".
pub async fn read_snapshot(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<RawRecord>, DeadLetterReadError> {
    let topic = topic.to_string();
    let kafka_error = |source: KafkaError| DeadLetterReadError::Kafka {
        topic: topic.clone(),
        source: source.into(),
    };
    let consumer: StreamConsumer<LoggingContext> = config
        .client_config("snapshot-reader")
        .set(
            "group.id",
            format!("rtfm-snapshot-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(LoggingContext::new("snapshot-reader"))
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
    loop {
        // The position passes transaction markers that are never delivered as records.
        if let Ok(positions) = consumer.position() {
            ends.retain(|partition, end| {
                positions
                    .find_partition(&topic, *partition)
                    .and_then(|p| p.offset().to_raw())
                    .is_none_or(|position| position < *end)
            });
            drop(positions);
        }
        if ends.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DeadLetterReadError::Timeout {
                topic: topic.clone(),
                timeout,
            });
        }
        let message = match tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
        {
            Ok(message) => message.map_err(kafka_error)?,
            Err(_) => continue,
        };
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_string(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(RawRecord {
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    Ok(out)
}
