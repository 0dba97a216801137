//! A partition assigned but never fetched is rejoined.
//!
//! librdkafka leaves an assigned partition unfetched for good when the OffsetFetch of its
//! committed offset is answered with a request-level `NOT_COORDINATOR` (a coordinator still
//! loading, as after a broker restart): the partition waits on a query that is never retried
//! (confluentinc/librdkafka#5586, open). Seen here as a bot that never posted the answers
//! waiting in `bot-responses` after the broker came back ("Failed to fetch committed offsets
//! for 0 partition(s) … Not coordinator"). Restarting the consumer recovers, so the watch does
//! the equivalent: it leaves the group and joins it again, which assigns and fetches anew.
//!
//! A partition counts as stalled when, for [`STALLED_AFTER`]: it is assigned, nothing was read
//! from it since (no position), records wait in it past where the group would start, the
//! consumer is not paused, and the application keeps polling (a loop that holds its batch
//! while a store is down polls nothing, and is left alone).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::Offset;
use tracing::warn;

use crate::kafka::config::OffsetReset;
use crate::kafka::context::LoggingContext;

/// How long a partition may look stalled before the consumer rejoins its group.
pub const STALLED_AFTER: Duration = Duration::from_secs(20);
/// How often the watch looks.
const EVERY: Duration = Duration::from_secs(10);
/// The application counts as polling when it called `recv` this recently.
const POLLED_WITHIN: Duration = Duration::from_secs(5);

/// One assigned partition as the watch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub partition: i32,
    /// Something was read from it since it was assigned.
    pub read: bool,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

impl Seen {
    /// Records wait where the group would start reading.
    fn waiting(&self, reset: OffsetReset) -> bool {
        match (self.committed, reset) {
            (Some(committed), _) => self.high > committed,
            (None, OffsetReset::Earliest) => self.high > self.low,
            // From the end: nothing assigned-but-unread can be told from nothing to read.
            (None, _) => false,
        }
    }
}

/// Since when each partition has looked stalled.
#[derive(Debug, Default)]
pub struct StallWatch {
    since: HashMap<i32, Instant>,
}

impl StallWatch {
    /// The partitions stalled for at least [`STALLED_AFTER`] at `now`, given what was `seen`
    /// (every assigned partition) and whether the application is polling.
    pub fn check(
        &mut self,
        seen: &[Seen],
        reset: OffsetReset,
        polling: bool,
        now: Instant,
    ) -> Vec<i32> {
        let stalled: Vec<i32> = seen
            .iter()
            .filter(|seen| polling && !seen.read && seen.waiting(reset))
            .map(|seen| seen.partition)
            .collect();
        self.since
            .retain(|partition, _| stalled.contains(partition));
        stalled
            .into_iter()
            .filter(|partition| {
                let since = *self.since.entry(*partition).or_insert(now);
                now.duration_since(since) >= STALLED_AFTER
            })
            .collect()
    }
}

/// What the consumer shares with its watch.
#[derive(Debug)]
pub struct Activity {
    /// Paused by the application (nothing is fetched on purpose).
    pub paused: AtomicBool,
    /// Calls of `recv` waiting now.
    waiting: AtomicU64,
    /// When a `recv` last returned (milliseconds since `started`).
    last_poll: AtomicU64,
    started: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            paused: AtomicBool::new(false),
            waiting: AtomicU64::new(0),
            last_poll: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

/// Counts a `recv` as waiting while it lives ([`Activity::waiting`]).
pub struct Waiting<'a>(&'a Activity);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        let millis = self.0.started.elapsed().as_millis() as u64;
        self.0.last_poll.store(millis.max(1), Ordering::Relaxed);
    }
}

impl Activity {
    /// The application asks for records until the guard is dropped.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Waiting in `recv` now, or it returned lately.
    fn polling(&self) -> bool {
        if self.waiting.load(Ordering::Relaxed) > 0 {
            return true;
        }
        let last = self.last_poll.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        last > 0 && now.saturating_sub(last) <= POLLED_WITHIN.as_millis() as u64
    }
}

/// Watches `consumer` (while it lives) and rejoins the group when a partition stalls.
pub fn spawn(
    consumer: Weak<StreamConsumer<LoggingContext>>,
    topic: String,
    role: String,
    reset: OffsetReset,
    activity: Arc<Activity>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // no runtime (a synchronous caller): no watch
    };
    runtime.spawn(async move {
        let mut watch = StallWatch::default();
        loop {
            tokio::time::sleep(EVERY).await;
            if consumer.strong_count() == 0 {
                return;
            }
            if activity.paused.load(Ordering::Relaxed) {
                watch = StallWatch::default();
                continue;
            }
            let polling = activity.polling();
            let (weak, topic_name) = (consumer.clone(), topic.clone());
            let seen = tokio::task::spawn_blocking(move || look(&weak, &topic_name))
                .await
                .ok()
                .flatten();
            let Some(seen) = seen else { continue };
            let stalled = watch.check(&seen, reset, polling, Instant::now());
            if stalled.is_empty() {
                continue;
            }
            warn!(role = %role, topic = %topic, partitions = ?stalled, "assigned partitions were never fetched (librdkafka#5586); leaving the group and joining it again");
            let (weak, topic_name) = (consumer.clone(), topic.clone());
            let _ = tokio::task::spawn_blocking(move || rejoin(&weak, &topic_name)).await;
            watch = StallWatch::default();
        }
    });
}

/// Every assigned partition of `topic` as it stands (blocking: watermarks and committed offsets
/// are asked of the broker, and only when some partition has had nothing read). `None` when
/// the consumer is gone or the broker does not answer.
fn look(consumer: &Weak<StreamConsumer<LoggingContext>>, topic: &str) -> Option<Vec<Seen>> {
    let consumer = consumer.upgrade()?;
    let timeout = Duration::from_secs(5);
    let seen = (|| {
        let assignment = consumer.assignment().ok()?;
        let positions = consumer.position().ok()?;
        // Local and free: only a partition nothing was read from since its assignment can be
        // stalled; the broker is asked about offsets only then.
        let unread = positions
            .elements()
            .iter()
            .any(|p| p.topic() == topic && !matches!(p.offset(), Offset::Offset(_)));
        if !unread {
            drop((assignment, positions));
            return Some(Vec::new());
        }
        let committed = consumer
            .committed_offsets(assignment.clone(), timeout)
            .ok()?;
        let mut seen = Vec::new();
        for element in assignment.elements().iter().filter(|e| e.topic() == topic) {
            let partition = element.partition();
            let offset_of = |list: &rdkafka::TopicPartitionList| {
                list.find_partition(topic, partition)
                    .and_then(|p| match p.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    })
            };
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout).ok()?;
            seen.push(Seen {
                partition,
                read: offset_of(&positions).is_some(),
                committed: offset_of(&committed),
                low,
                high,
            });
        }
        // The lists go before the consumer (a list that outlives it makes rd_kafka_destroy hang).
        drop((assignment, positions, committed));
        Some(seen)
    })();
    drop(consumer);
    seen
}

/// Leaves the group and joins it again: a fresh assignment, fetched from the committed offsets.
fn rejoin(consumer: &Weak<StreamConsumer<LoggingContext>>, topic: &str) {
    if let Some(consumer) = consumer.upgrade() {
        consumer.unsubscribe();
        if let Err(err) = consumer.subscribe(&[topic]) {
            warn!(topic, error = %err, "could not join the group again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(partition: i32, read: bool, committed: Option<i64>, high: i64) -> Seen {
        Seen {
            partition,
            read,
            committed,
            low: 0,
            high,
        }
    }

    #[test]
    fn a_partition_with_records_never_read_is_stalled_after_a_while() {
        let mut watch = StallWatch::default();
        let start = Instant::now();
        let stuck = [seen(0, false, Some(3), 5), seen(1, true, Some(3), 9)];
        assert!(
            watch
                .check(&stuck, OffsetReset::Earliest, true, start)
                .is_empty(),
            "not at once"
        );
        let later = start + STALLED_AFTER;
        assert_eq!(
            watch.check(&stuck, OffsetReset::Earliest, true, later),
            vec![0]
        );
    }

    #[test]
    fn idle_read_paused_or_unpolled_partitions_are_not_stalled() {
        let later = Instant::now() + STALLED_AFTER * 2;
        let cases = [
            // Nothing past the committed offset: idle, not stalled.
            (seen(0, false, Some(5), 5), OffsetReset::Earliest, true),
            // Read from since the assignment.
            (seen(0, true, Some(1), 5), OffsetReset::Earliest, true),
            // No committed offset and the group starts at the end: cannot tell.
            (seen(0, false, None, 5), OffsetReset::Latest, true),
            // The application is not polling (holding a batch while a store is down).
            (seen(0, false, Some(1), 5), OffsetReset::Earliest, false),
        ];
        for (partition, reset, polling) in cases {
            let mut watch = StallWatch::default();
            watch.check(&[partition], reset, polling, Instant::now());
            assert!(
                watch.check(&[partition], reset, polling, later).is_empty(),
                "{partition:?} {reset:?} polling={polling}"
            );
        }
    }

    #[test]
    fn a_new_group_starting_from_the_beginning_counts_its_backlog() {
        let mut watch = StallWatch::default();
        let start = Instant::now();
        let new_group = [seen(2, false, None, 4)];
        watch.check(&new_group, OffsetReset::Earliest, true, start);
        assert_eq!(
            watch.check(
                &new_group,
                OffsetReset::Earliest,
                true,
                start + STALLED_AFTER
            ),
            vec![2]
        );
    }

    #[test]
    fn a_partition_read_meanwhile_starts_over() {
        let mut watch = StallWatch::default();
        let start = Instant::now();
        watch.check(
            &[seen(0, false, Some(1), 5)],
            OffsetReset::Earliest,
            true,
            start,
        );
        watch.check(
            &[seen(0, true, Some(1), 5)],
            OffsetReset::Earliest,
            true,
            start + EVERY,
        );
        assert!(watch
            .check(
                &[seen(0, false, Some(1), 5)],
                OffsetReset::Earliest,
                true,
                start + STALLED_AFTER
            )
            .is_empty());
    }
}
