//! The Kafka client's errors as rtfm-core reports them: librdkafka's own message (its error
//! code and reason), behind a type of ours, so no `rdkafka` type crosses rtfm-core's API.

use rdkafka::error::KafkaError;

/// An error of the Kafka client. `Display` is librdkafka's message, e.g. "Transaction error:
/// Broker: Producer attempted an operation with an old epoch (ProducerFenced)".
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ClientError(KafkaError);

impl ClientError {
    /// The client dropped the request (a blocking call's thread went away).
    pub(crate) fn canceled() -> Self {
        Self(KafkaError::Canceled)
    }

    pub(crate) fn kafka(&self) -> &KafkaError {
        &self.0
    }
}

impl From<KafkaError> for ClientError {
    fn from(err: KafkaError) -> Self {
        Self(err)
    }
}
