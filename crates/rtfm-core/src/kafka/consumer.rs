//! At-least-once typed consumer with a dead-letter topic.
//!
//! Delivery guarantee: an offset is stored only when the caller says its side effect is durable
//! ([`Consumer::store`]); librdkafka auto-commits *stored* offsets in the background
//! (`enable.auto.commit=true`, `enable.auto.offset.store=false` — the rust-rdkafka
//! `at_least_once` pattern). A crash before `store` re-delivers the record, so effects must be
//! idempotent (the processor's Chroma upsert is keyed by message id).
//!
//! A record that does not decode never blocks its partition and is never dropped: it is written
//! to `<topic>.dlq` with the error and its origin in headers, then its offset is stored — once
//! every valid record before it in its partition is done (`progress`), so a position is never
//! committed ahead of work still in hand.

mod assignment;
mod dead_letter;
mod options;
mod progress;
mod stall;

use options::is_fatal;
pub use options::{ConsumeError, ConsumerOptions, Received};

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerGroupMetadata, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::kafka::blocking;
use crate::kafka::config::KafkaConfig;
use crate::kafka::context::LoggingContext;
use crate::kafka::error::ClientError;
use crate::kafka::producer::Producer;
use crate::schema::Record;

/// Typed consumer of the topic of `T`.
pub struct Consumer<T> {
    /// Shared with blocking calls run off the async runtime (commit, seek).
    inner: Arc<StreamConsumer<LoggingContext>>,
    topic: String,
    dead_letter_topic: String,
    dead_letters: Producer,
    role: String,
    instance_id: Option<String>,
    /// Offsets go out with transactions, not by auto-commit.
    transactional: bool,
    /// Records handed out and not yet stored, and dead letters waiting behind them.
    progress: Mutex<progress::Progress>,
    /// Polling and pausing, as the stalled-partition watch needs to know them.
    activity: Arc<stall::Activity>,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> Consumer<T> {
    pub fn new(
        config: &KafkaConfig,
        options: &ConsumerOptions,
        dead_letters: Producer,
    ) -> Result<Self, ConsumeError> {
        let topics = config.topics();
        let topic = topics.name(T::TOPIC);
        let mut client_config = config.client_config(&options.role);
        if let Some(instance) = &options.instance_id {
            client_config.set("group.instance.id", format!("{}-{instance}", options.role));
        }
        let inner: StreamConsumer<LoggingContext> = client_config
            .set("group.id", topics.group(&options.group))
            .set("enable.auto.commit", (!options.transactional).to_string())
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                options.auto_commit_interval.as_millis().max(1).to_string(),
            )
            .set("auto.offset.reset", options.offset_reset.as_str())
            // Never see records of aborted or open transactions (bot-responses is transactional).
            .set("isolation.level", "read_committed")
            // A killed member's partitions move to the survivors within this bound.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("enable.partition.eof", "false")
            // Bound the prefetch buffer (librdkafka's default is 64 MiB per consumer): a
            // backlog must not become resident memory.
            .set("queued.max.messages.kbytes", "8192")
            .create_with_context(LoggingContext::new(options.role.clone()))
            .map_err(|source| ConsumeError::Create {
                bootstrap: config.bootstrap_servers.clone(),
                source: source.into(),
            })?;
        inner
            .subscribe(&[&topic])
            .map_err(|source| ConsumeError::Subscribe {
                topic: topic.clone(),
                source: source.into(),
            })?;
        info!(role = %options.role, topic, group = %topics.group(&options.group), "consumer subscribed");
        let inner = Arc::new(inner);
        let activity = Arc::new(stall::Activity::default());
        stall::spawn(
            Arc::downgrade(&inner),
            topic.clone(),
            options.role.clone(),
            options.offset_reset,
            Arc::clone(&activity),
        );
        Ok(Self {
            inner,
            activity,
            dead_letter_topic: topics.dead_letter(T::TOPIC),
            topic,
            dead_letters,
            role: options.role.clone(),
            instance_id: options.instance_id.clone(),
            transactional: options.transactional,
            progress: Mutex::default(),
            _record: PhantomData,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next valid record, or `None` once `shutdown` is cancelled. Invalid records are
    /// dead-lettered on the way (and their offsets stored once nothing before them is in hand).
    ///
    /// Cancel-safe while it waits (`StreamConsumer::recv` is). Do not wrap it in a timeout:
    /// a dead letter cut off half-way would leave its record skipped; use [`Consumer::recv_batch`]
    /// (which only ever stops *waiting*) instead.
    pub async fn recv(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Received<T>>, ConsumeError> {
        self.recv_until(shutdown, None).await
    }

    /// Like [`Consumer::recv`], but stops *waiting* after `wait` (`Ok(None)`, as on shutdown):
    /// a record in hand is always finished. For a loop that must look up between records.
    pub async fn recv_within(
        &self,
        shutdown: &CancellationToken,
        wait: Duration,
    ) -> Result<Option<Received<T>>, ConsumeError> {
        self.recv_until(shutdown, Some(tokio::time::Instant::now() + wait))
            .await
    }

    /// Like `recv`, but stops waiting at `deadline`. A record in hand (including one being
    /// dead-lettered) is always finished first; only `shutdown` interrupts a dead letter, and
    /// then its offset is not stored, so it is read again after a restart.
    ///
    /// Transient client errors are absorbed here (logged, waited out with backoff); only a
    /// fatal one is returned.
    async fn recv_until(
        &self,
        shutdown: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<Received<T>>, ConsumeError> {
        loop {
            let waiting = self.activity.waiting();
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(None),
                _ = wait_until(deadline) => return Ok(None),
                message = self.inner.recv() => message,
            };
            drop(waiting);
            let message = match message {
                Ok(message) => message.detach(),
                Err(source) if is_fatal(&source) => {
                    error!(role = %self.role, error = %source, "consumer stopped by a fatal Kafka error");
                    let instance = self
                        .instance_id
                        .as_deref()
                        .map(|id| format!(" (instance id `{id}`)"))
                        .unwrap_or_default();
                    return Err(ConsumeError::Fatal {
                        consumer: format!("`{}`{instance}", self.role),
                        source: source.into(),
                    });
                }
                // No sleep here: these are events librdkafka queued while it reconnects by
                // itself (one per failed attempt, so they come at its reconnect pace). Sleeping
                // per event would leave a backlog of stale errors to wade through after the
                // broker is back, one sleep each, with the records waiting behind them.
                Err(err) => {
                    warn!(role = %self.role, error = %err, "kafka error while consuming; librdkafka retries");
                    continue;
                }
            };
            let marks = self.inner.context().marks();
            if marks.claim_fetch(message.topic(), message.partition()) {
                // The partition's end when we got it (see `RedeliveryMarks`), fetched on a
                // blocking thread and not awaited: it is a network call of up to seconds, and
                // an await here would make `recv` lose this record if cancelled. Until the mark
                // is known, every record of the partition counts as a possible redelivery
                // (safe, only slower); unanswered, it stays so.
                let consumer = Arc::clone(&self.inner);
                let (topic, partition) = (message.topic().to_string(), message.partition());
                let (marks, role) = (marks.clone(), self.role.clone());
                tokio::task::spawn_blocking(move || {
                    let mark = match consumer.fetch_watermarks(
                        &topic,
                        partition,
                        Duration::from_secs(5),
                    ) {
                        Ok((_, high)) => high,
                        Err(err) => {
                            warn!(%role, error = %err, "no high watermark for a newly assigned partition");
                            i64::MAX
                        }
                    };
                    marks.set(&topic, partition, mark);
                });
            }
            let payload = message.payload().unwrap_or_default();
            match T::decode(payload) {
                Ok(record) => {
                    if !self.transactional {
                        self.track(|progress| {
                            progress.handed_out(
                                message.topic(),
                                message.partition(),
                                message.offset(),
                            )
                        });
                    }
                    return Ok(Some(Received {
                        record,
                        maybe_redelivered: marks.may_be_redelivered(
                            message.topic(),
                            message.partition(),
                            message.offset(),
                        ),
                        topic: message.topic().to_string(),
                        partition: message.partition(),
                        offset: message.offset(),
                    }));
                }
                Err(err) => {
                    if !self.dead_letter(&message, &err, shutdown).await {
                        return Ok(None);
                    }
                    if !self.transactional {
                        // Stored now only if nothing before it is still in hand; otherwise the
                        // caller's store of those records stores it too.
                        let (topic, partition, offset) =
                            (message.topic(), message.partition(), message.offset());
                        if let Some(position) = self
                            .track(|progress| progress.dead_lettered(topic, partition, offset))
                            .flatten()
                        {
                            self.store_raw(topic, partition, position);
                        }
                        continue;
                    }
                    // Transactional: no auto-commit, and no transaction is open while a record is
                    // read (each is committed before the next read), so nothing is in hand:
                    // commit the dead-lettered position now, or a restart dead-letters it again.
                    // Async: never blocks the worker; a lost commit only repeats the letter.
                    self.store_raw(message.topic(), message.partition(), message.offset());
                    if let Err(err) = self.inner.commit_consumer_state(CommitMode::Async) {
                        warn!(role = %self.role, error = %err, "could not commit past a dead-lettered record; it may be dead-lettered again after a restart");
                    }
                }
            }
        }
    }

    /// Up to `max` records: waits for the first, then collects more for at most `linger`.
    /// Empty only when `shutdown` is cancelled.
    pub async fn recv_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Received<T>>, ConsumeError> {
        let mut batch = Vec::with_capacity(max);
        match self.recv(shutdown).await? {
            Some(first) => batch.push(first),
            None => return Ok(batch),
        }
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match self.recv_until(shutdown, Some(deadline)).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) => break,
                Err(err) => return Err(err),
            }
        }
        Ok(batch)
    }

    /// Marks `received` as done: its offset (+1) will be committed. Call only after the
    /// record's effect is durable.
    pub fn store(&self, received: &Received<T>) {
        self.store_position(&received.topic, received.partition, received.offset);
    }

    /// Marks everything up to and including `offset` of `topic`/`partition` as done (its next
    /// offset will be committed). For consumers that finish records out of order and track the
    /// done prefix themselves.
    pub fn store_position(&self, topic: &str, partition: i32, offset: i64) {
        let position = if self.transactional {
            offset
        } else {
            self.track(|progress| progress.stored(topic, partition, offset))
                .unwrap_or(offset)
        };
        self.store_raw(topic, partition, position);
    }

    /// Runs `change` on the progress book (`None` if its lock was poisoned: a panic elsewhere,
    /// after which storing nothing more is the safe side).
    fn track<R>(&self, change: impl FnOnce(&mut progress::Progress) -> R) -> Option<R> {
        self.progress
            .lock()
            .ok()
            .map(|mut progress| change(&mut progress))
    }

    fn store_raw(&self, topic: &str, partition: i32, offset: i64) {
        if let Err(err) = self.inner.store_offset(topic, partition, offset) {
            // The partition was revoked meanwhile; its new owner re-reads the record
            // (at-least-once), so this is only worth a warning.
            warn!(role = %self.role, topic, partition, offset, error = %err, "could not store offset");
        }
    }

    /// Starts committing the stored offsets now, without waiting for the broker (the result
    /// is logged by the consumer's commit callback; auto-commit stays the backstop). For a
    /// loop that has just made a batch durable: the group's committed position then follows
    /// the work within a round trip instead of within `auto.commit.interval.ms`, so a restart
    /// re-reads less and lag seen from outside the process is current.
    pub fn commit_soon(&self) {
        match self.inner.commit_consumer_state(CommitMode::Async) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => {
                warn!(role = %self.role, error = %err, "offset commit could not be started; auto-commit will retry")
            }
        }
    }

    /// Commits stored offsets now (used at shutdown so a restart re-reads nothing). The
    /// synchronous commit runs off the async runtime.
    pub async fn commit(&self) -> Result<(), ClientError> {
        let inner = Arc::clone(&self.inner);
        blocking(
            move || match inner.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                Err(err) => Err(err),
            },
        )
        .await
    }

    /// Rewinds a partition to `offset` so that record is read again (after an aborted
    /// transaction). The seek runs off the async runtime.
    ///
    /// A partition this member no longer owns (a rebalance took it during the transaction) is
    /// left alone: its new owner reads from the committed offset, which is before the input.
    pub async fn rewind(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), ClientError> {
        let owned = self.inner.assignment().is_ok_and(|assignment| {
            assignment
                .elements()
                .iter()
                .any(|e| e.topic() == topic && e.partition() == partition)
        });
        if !owned {
            info!(role = %self.role, topic, partition, offset, "not rewinding a partition this member no longer owns");
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_string();
        blocking(move || {
            inner.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Timeout::After(Duration::from_secs(10)),
            )
        })
        .await
    }

    pub(crate) fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.inner.group_metadata()
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn wait_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Builds the offsets to commit for one input record (the *next* offset to read).
pub(crate) fn next_offsets(
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    Ok(list)
}
