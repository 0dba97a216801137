//! One typed reader of a topic for tests: a private consumer group from the beginning of the
//! topic, keeping every record with where it was (partition, offset).

use std::time::Duration;

use rtfm_core::kafka::{Consumer, ConsumerOptions, KafkaConfig, Producer, Received};
use rtfm_core::Record;
use tokio_util::sync::CancellationToken;

pub struct TopicReader<T: Record> {
    consumer: Consumer<T>,
    /// Everything read so far, in arrival order.
    pub seen: Vec<Received<T>>,
}

impl<T: Record + std::fmt::Debug> TopicReader<T> {
    /// Reads `T`'s topic of `kafka` from the beginning in a private group.
    pub fn new(kafka: &KafkaConfig) -> Self {
        let producer = Producer::new(kafka, "test-reader").expect("producer");
        let group = format!("reader-{}", uuid::Uuid::new_v4());
        Self {
            consumer: Consumer::new(kafka, &ConsumerOptions::new(&group, "test"), producer)
                .expect("consumer"),
            seen: Vec::new(),
        }
    }

    /// Reads until `done(&seen)` holds; panics naming `what` after `timeout`.
    pub async fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Received<T>]) -> bool,
    ) -> &[Received<T>] {
        let shutdown = CancellationToken::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.seen) {
            let next = tokio::time::timeout_at(deadline, self.consumer.recv(&shutdown))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}; read {} records",
                        self.seen.len()
                    )
                })
                .expect("consumer works")
                .expect("not shut down");
            self.seen.push(next);
        }
        &self.seen
    }

    /// Reads the next record (kept in `seen` too); panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> T
    where
        T: Clone,
    {
        let shutdown = CancellationToken::new();
        let received = tokio::time::timeout(timeout, self.consumer.recv(&shutdown))
            .await
            .unwrap_or_else(|_| panic!("no record within {timeout:?}"))
            .expect("consumer works")
            .expect("not shut down");
        let record = received.record.clone();
        self.seen.push(received);
        record
    }

    /// Whatever arrives within `quiet` (kept in `seen`), to prove that nothing more does:
    /// the first such record, if any.
    pub async fn nothing_within(&mut self, quiet: Duration) -> Option<T>
    where
        T: Clone,
    {
        let shutdown = CancellationToken::new();
        let first = self.seen.len();
        while let Ok(Ok(Some(received))) =
            tokio::time::timeout(quiet, self.consumer.recv(&shutdown)).await
        {
            self.seen.push(received);
        }
        self.seen.get(first).map(|received| received.record.clone())
    }

    /// The records read so far.
    pub fn records(&self) -> Vec<&T> {
        self.seen.iter().map(|received| &received.record).collect()
    }

    /// (partition, offset) of every record read so far (for
    /// [`crate::services::until_group_passed`]).
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.seen
            .iter()
            .map(|received| (received.partition, received.offset))
            .collect()
    }
}
