//! What a consumer owns: pausing and resuming its partitions, and how far behind it is.

use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use tracing::warn;

use super::Consumer;
use crate::schema::Record;

impl<T: Record> Consumer<T> {
    /// Stops fetching from every partition this member owns, while [`Consumer::recv`] goes on
    /// being called (so the member stays in its group: polling is what keeps it there). For a
    /// reader whose work in hand is full. Partitions assigned later are not paused.
    pub fn pause_assigned(&self) {
        self.activity
            .paused
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(assignment) = self.inner.assignment() {
            if let Err(err) = self.inner.pause(&assignment) {
                warn!(role = %self.role, error = %err, "could not pause the assigned partitions");
            }
        }
    }

    /// Fetches again from every partition this member owns (see [`Consumer::pause_assigned`]).
    pub fn resume_assigned(&self) {
        self.activity
            .paused
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Ok(assignment) = self.inner.assignment() {
            if let Err(err) = self.inner.resume(&assignment) {
                warn!(role = %self.role, error = %err, "could not resume the assigned partitions");
            }
        }
    }

    /// Committed offsets of our topic's partitions that this member owns (tests, lag).
    pub fn assigned_partitions(&self) -> Vec<i32> {
        match self.inner.assignment() {
            Ok(list) => list.elements().iter().map(|e| e.partition()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Total records between our committed position and the end of each assigned partition.
    pub fn lag(&self, timeout: Duration) -> Option<i64> {
        let assignment = self.inner.assignment().ok()?;
        let mut lag = 0;
        let positions = self.inner.position().ok()?;
        for element in assignment.elements() {
            let (_low, high) = self
                .inner
                .fetch_watermarks(element.topic(), element.partition(), timeout)
                .ok()?;
            let position = positions
                .find_partition(element.topic(), element.partition())
                .and_then(|p| p.offset().to_raw())
                .filter(|offset| *offset >= 0)
                .unwrap_or(high);
            lag += (high - position).max(0);
        }
        // Drop the lists before returning: a TopicPartitionList that outlives its consumer makes
        // rd_kafka_destroy hang (see notes/rdkafka.md).
        drop(positions);
        drop(assignment);
        Some(lag)
    }
}
