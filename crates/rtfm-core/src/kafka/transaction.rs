//! Consume-transform-produce in one Kafka transaction: exactly one output per input.
//!
//! The output records and the input's next offset are committed atomically
//! (`send_offsets_to_transaction`). If the process dies before the commit, the broker aborts the
//! transaction (at the latest when a producer with the same `transactional.id` starts and fences
//! it), `read_committed` consumers never see the partial output, and the input — whose offset was
//! not committed — is processed again.

use std::time::Duration;

use crate::kafka::error::ClientError;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tracing::{info, warn};

use crate::kafka::blocking;
use crate::kafka::config::KafkaConfig;
use crate::kafka::consumer::{next_offsets, Consumer, Received};
use crate::kafka::context::LoggingContext;
use crate::schema::Record;
use crate::topics::Topics;

/// Upper bound for one transaction; a crashed producer's open transaction is aborted by the
/// broker after this long even if nobody fences it.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("could not create the transactional producer `{transactional_id}`: {source}")]
    Create {
        transactional_id: String,
        source: ClientError,
    },
    /// The transaction was aborted and the input rewound; processing it again is safe.
    #[error("transaction aborted, input will be processed again: {0}")]
    Aborted(ClientError),
    /// The producer is unusable (e.g. fenced by a newer instance with the same id); the
    /// process should stop and be restarted.
    #[error(
        "transactional producer failed fatally: {0} (\"fenced\" means another live process \
         uses the same transactional id, i.e. the same PROCESSOR_INSTANCE_ID)"
    )]
    Fatal(ClientError),
    #[error("the consumer has no group metadata yet (not in a group)")]
    NoGroupMetadata,
}

impl TransactionError {
    /// A creation that failed because the broker did not answer in time (unreachable, or still
    /// starting): calling [`TransactionalProducer::new`] again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            TransactionError::Create { source, .. } => match source.kafka() {
                KafkaError::Transaction(inner) => inner.is_retriable() && !inner.is_fatal(),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A producer whose records become visible only together with the input offsets they answer.
#[derive(Clone)]
pub struct TransactionalProducer {
    inner: FutureProducer<LoggingContext>,
    topics: Topics,
    transactional_id: String,
}

impl TransactionalProducer {
    /// Creates the producer and registers its `transactional_id` with the broker, which fences
    /// (aborts) any open transaction of a previous incarnation with the same id.
    pub async fn new(
        config: &KafkaConfig,
        transactional_id: &str,
    ) -> Result<Self, TransactionError> {
        let create_error = |source: ClientError| TransactionError::Create {
            transactional_id: transactional_id.to_string(),
            source,
        };
        let inner: FutureProducer<LoggingContext> = config
            .client_config(transactional_id)
            .set("transactional.id", transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", config.compression.as_str())
            .set("linger.ms", "0")
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .create_with_context(LoggingContext::new(format!("txn:{transactional_id}")))
            .map_err(|err| create_error(err.into()))?;
        let producer = inner.clone();
        blocking(move || producer.init_transactions(Timeout::After(CALL_TIMEOUT)))
            .await
            .map_err(create_error)?;
        info!(transactional_id, "transactional producer ready");
        Ok(Self {
            inner,
            topics: config.topics(),
            transactional_id: transactional_id.to_string(),
        })
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// Sends `outputs` and commits `input`'s offset in one transaction. On failure the
    /// transaction is aborted and the consumer rewound to `input`, so it comes back.
    pub async fn send_with_offset<I: Record, O: Record>(
        &self,
        consumer: &Consumer<I>,
        input: &Received<I>,
        outputs: &[O],
    ) -> Result<(), TransactionError> {
        let group = consumer
            .group_metadata()
            .ok_or(TransactionError::NoGroupMetadata)?;
        let result = self.try_send_with_offset(group, input, outputs).await;
        let Err(err) = result else { return Ok(()) };
        if is_fatal(&err) {
            return Err(TransactionError::Fatal(err));
        }
        warn!(transactional_id = %self.transactional_id, error = %err, "aborting transaction");
        let producer = self.inner.clone();
        // An abort that timed out (the broker busy or restarting) is retried with the same
        // call, as librdkafka asks; only what stays failed is fatal.
        if let Err(abort_err) = blocking(move || {
            retry_retriable(|| producer.abort_transaction(Timeout::After(CALL_TIMEOUT)))
        })
        .await
        {
            return Err(TransactionError::Fatal(abort_err));
        }
        if let Err(seek_err) = consumer
            .rewind(&input.topic, input.partition, input.offset)
            .await
        {
            // Without the rewind the consumer would skip the input; stopping (and restarting
            // from the committed offset) is the safe way out.
            return Err(TransactionError::Fatal(seek_err));
        }
        Err(TransactionError::Aborted(err))
    }

    async fn try_send_with_offset<I: Record, O: Record>(
        &self,
        group: ConsumerGroupMetadata,
        input: &Received<I>,
        outputs: &[O],
    ) -> Result<(), ClientError> {
        self.begin().await?;
        for output in outputs {
            self.send(output).await?;
        }
        let offsets = next_offsets(&input.topic, input.partition, input.offset)?;
        let producer = self.inner.clone();
        blocking(move || {
            // librdkafka's rules: a retriable error (e.g. a commit that timed out) is retried
            // with the same call; one that requires an abort is returned and aborted by the
            // caller; a fatal one ends the producer.
            retry_retriable(|| {
                producer.send_offsets_to_transaction(&offsets, &group, Timeout::After(CALL_TIMEOUT))
            })?;
            retry_retriable(|| producer.commit_transaction(Timeout::After(CALL_TIMEOUT)))
        })
        .await
    }

    /// Starts a transaction. Exposed so tests can simulate a crash half-way through.
    pub async fn begin(&self) -> Result<(), ClientError> {
        let producer = self.inner.clone();
        blocking(move || producer.begin_transaction()).await
    }

    /// Sends one record inside the open transaction.
    pub async fn send<O: Record>(&self, output: &O) -> Result<(), ClientError> {
        let topic = self.topics.name(O::TOPIC);
        let payload = output.encode();
        let key = output.key();
        let record = FutureRecord::<str, [u8]>::to(&topic)
            .key(key.as_str())
            .payload(&payload);
        self.inner
            .send(record, Timeout::After(CALL_TIMEOUT))
            .await
            .map(|_| ())
            .map_err(|(err, _)| err.into())
    }
}

/// Calls `call` again while librdkafka says its error is retriable (at most a few times).
/// Runs on a blocking thread, so the short sleeps block no async worker.
fn retry_retriable(mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(KafkaError::Transaction(err)) if err.is_retriable() && attempts < 5 => {
                attempts += 1;
                warn!(error = %err, attempts, "retriable transaction error; retrying the call");
                std::thread::sleep(Duration::from_millis(200 * attempts));
            }
            other => return other,
        }
    }
}

fn is_fatal(err: &ClientError) -> bool {
    match err.kafka() {
        KafkaError::Transaction(inner) => inner.is_fatal(),
        _ => false,
    }
}
