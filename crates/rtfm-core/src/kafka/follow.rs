//! Following `rtfm-control`: every service that indexes, answers or shows the community's
//! choices reads the whole compacted topic from its beginning (no consumer group, nothing
//! committed) into one [`ControlState`], and keeps reading.
//!
//! [`Follower::caught_up`] is the barrier that makes a choice binding the moment it is
//! acknowledged: it asks the broker for the topic's end and waits until everything before it
//! is folded in. A processor passes it before each batch it indexes and each question it
//! answers, so whatever was written to the topic before that batch or question was read is
//! obeyed. If the broker cannot say, the caller treats it as the outage it is: it waits, and
//! commits nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::control::ControlState;
use crate::kafka::config::KafkaConfig;
use crate::kafka::context::LoggingContext;
use crate::kafka::error::ClientError;
use crate::schema::{ControlRecord, Record};
use crate::topics::TopicKind;

/// Why the state could not be shown to be current.
#[derive(Debug, thiserror::Error)]
pub enum NotCaughtUp {
    #[error("could not ask Kafka for the end of {topic}: {reason}")]
    Broker { topic: String, reason: String },
    #[error("{topic} was not read to its end within {waited:?}")]
    Slow { topic: String, waited: Duration },
}

/// What the reading task shares with the callers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Progress {
    /// Next offset to read, per partition (absent: nothing read yet).
    next: HashMap<i32, i64>,
    /// Partitions of the topic (0 until its metadata was read).
    partitions: i32,
    /// Records folded in so far.
    applied: u64,
}

/// The folded state of `rtfm-control`, kept current by a background task.
pub struct Follower {
    consumer: Arc<StreamConsumer<LoggingContext>>,
    /// Asks for the topic's end on a connection of its own: on the reading consumer's, the
    /// request would queue behind the fetch the broker holds open while there is nothing new
    /// (`fetch.wait.max.ms`, 500 ms), and every barrier would take that long.
    ends: Arc<BaseConsumer<LoggingContext>>,
    topic: String,
    state: RwLock<ControlState>,
    progress: watch::Sender<Progress>,
    timeout: Duration,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Follower {
    /// Starts following (the task ends with `shutdown`).
    pub fn start(
        config: &KafkaConfig,
        role: &str,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClientError> {
        let topic = config.topics().name(TopicKind::Control);
        let consumer: StreamConsumer<LoggingContext> = config
            .client_config(&format!("{role}-control"))
            .set("group.id", format!("rtfm-follow-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create_with_context(LoggingContext::new(format!("{role}-control")))?;
        let ends: BaseConsumer<LoggingContext> = config
            .client_config(&format!("{role}-control-ends"))
            .set(
                "group.id",
                format!("rtfm-follow-ends-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create_with_context(LoggingContext::new(format!("{role}-control-ends")))?;
        let follower = Arc::new(Self {
            consumer: Arc::new(consumer),
            ends: Arc::new(ends),
            topic,
            state: RwLock::new(ControlState::default()),
            progress: watch::Sender::new(Progress::default()),
            timeout: config.request_timeout(),
        });
        tokio::spawn(Arc::clone(&follower).read(shutdown));
        Ok(follower)
    }

    /// The state as read so far.
    pub fn state(&self) -> RwLockReadGuard<'_, ControlState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes whenever a record is folded in.
    pub fn changes(&self) -> watch::Receiver<u64> {
        let (sender, receiver) = watch::channel(self.progress.borrow().applied);
        let mut progress = self.progress.subscribe();
        tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let applied = progress.borrow_and_update().applied;
                if sender.send(applied).is_err() {
                    return;
                }
            }
        });
        receiver
    }

    /// Waits until every record written before this call is folded in, for at most `wait`.
    pub async fn caught_up(&self, wait: Duration) -> Result<(), NotCaughtUp> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut progress = self.progress.subscribe();
        // The topic's partitions are known once the task read its metadata.
        let partitions = loop {
            let partitions = progress.borrow_and_update().partitions;
            if partitions > 0 {
                break partitions;
            }
            if tokio::time::timeout_at(deadline, progress.changed())
                .await
                .is_err()
            {
                return Err(NotCaughtUp::Broker {
                    topic: self.topic.clone(),
                    reason:
                        "its partitions are not known yet (is the topic created? run init-topics)"
                            .into(),
                });
            }
        };
        let consumer = Arc::clone(&self.ends);
        let (topic, timeout) = (self.topic.clone(), self.timeout.min(wait));
        let ends = tokio::task::spawn_blocking(move || {
            let ends = (0..partitions)
                .map(|partition| {
                    consumer
                        .fetch_watermarks(&topic, partition, Timeout::After(timeout))
                        .map(|(_, high)| (partition, high))
                })
                .collect::<Result<Vec<_>, _>>();
            // Serve what this client queued meanwhile (its logs and errors go to its queue,
            // which nothing else reads): nothing is assigned, so no message comes back.
            while consumer.poll(Duration::ZERO).is_some() {}
            ends
        })
        .await
        .map_err(|err| NotCaughtUp::Broker {
            topic: self.topic.clone(),
            reason: err.to_string(),
        })?
        .map_err(|err| NotCaughtUp::Broker {
            topic: self.topic.clone(),
            reason: ClientError::from(err).to_string(),
        })?;
        let reached = |progress: &Progress| {
            ends.iter().all(|(partition, end)| {
                *end <= 0 || progress.next.get(partition).is_some_and(|next| next >= end)
            })
        };
        let caught_up = tokio::time::timeout_at(deadline, progress.wait_for(reached))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if caught_up {
            Ok(())
        } else {
            Err(NotCaughtUp::Slow {
                topic: self.topic.clone(),
                waited: wait,
            })
        }
    }

    async fn read(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(partitions) = self.partitions(&shutdown).await else {
            return;
        };
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            if let Err(err) =
                assignment.add_partition_offset(&self.topic, partition, Offset::Beginning)
            {
                warn!(topic = %self.topic, error = %err, "could not follow a partition");
            }
        }
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        while let Err(err) = self.consumer.assign(&assignment) {
            warn!(topic = %self.topic, error = %ClientError::from(err), "could not follow the community's choices; trying again");
            if !backoff.wait(&shutdown).await {
                return;
            }
        }
        self.progress
            .send_modify(|progress| progress.partitions = partitions);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = self.consumer.recv() => received,
            };
            let message = match received {
                Ok(message) => message,
                Err(err) => {
                    debug!(topic = %self.topic, error = %ClientError::from(err), "reading the community's choices");
                    continue;
                }
            };
            let (partition, offset) = (message.partition(), message.offset());
            match message.payload() {
                None => {
                    let key = message
                        .key()
                        .map(|key| String::from_utf8_lossy(key).into_owned())
                        .unwrap_or_default();
                    self.write().forget_key(&key);
                }
                Some(payload) => match ControlRecord::decode(payload) {
                    Ok(record) => self.write().apply(&record),
                    // The applier dead-letters it; every follower just passes it by.
                    Err(err) => {
                        warn!(topic = %self.topic, partition, offset, error = %err, "a control record that does not decode was ignored")
                    }
                },
            }
            self.progress.send_modify(|progress| {
                progress.next.insert(partition, offset + 1);
                progress.applied += 1;
            });
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ControlState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The topic's partition count, asked until the topic exists (or shutdown).
    async fn partitions(&self, shutdown: &CancellationToken) -> Option<i32> {
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut warned = false;
        loop {
            let consumer = Arc::clone(&self.consumer);
            let (topic, timeout) = (self.topic.clone(), self.timeout);
            let found = tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(Some(&topic), Timeout::After(timeout))
                    .map(|metadata| {
                        metadata
                            .topics()
                            .first()
                            .filter(|topic| topic.error().is_none())
                            .map_or(0, |topic| topic.partitions().len() as i32)
                    })
            })
            .await;
            match found {
                Ok(Ok(partitions)) if partitions > 0 => {
                    info!(topic = %self.topic, partitions, "following the community's choices");
                    return Some(partitions);
                }
                other => {
                    if !warned {
                        let why = match other {
                            Ok(Err(err)) => ClientError::from(err).to_string(),
                            _ => "the topic does not exist (run init-topics)".to_string(),
                        };
                        warn!(topic = %self.topic, reason = %why, "waiting for the community's choices");
                        warned = true;
                    }
                }
            }
            if !backoff.wait(shutdown).await {
                return None;
            }
        }
    }
}
