//! Which positions a consumer may store: never one ahead of work still in hand.
//!
//! A record that does not decode is dead-lettered as soon as it is read, but the valid records
//! read before it in its partition may still be on their way (a batch being embedded, the next
//! batch read while the last is written). Storing the dead letter's offset at once would let
//! auto-commit move the group past those records, and a crash would lose them. So a dead
//! letter's position is stored only when every record before it in its partition is done;
//! until then it waits here, and the caller's own store of the records before it releases it.

use std::collections::{BTreeSet, HashMap};

/// Per partition: the valid records handed to the caller and not yet stored, and the dead
/// letters waiting behind them.
#[derive(Debug, Default)]
pub(super) struct Progress {
    partitions: HashMap<(String, i32), Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    in_hand: BTreeSet<i64>,
    dead_letters: BTreeSet<i64>,
}

impl Partition {
    /// A record at `offset` is read: anything this partition held at or after it is being
    /// read again (a rewind, or a reassignment from the committed position) and starts over.
    fn reread_from(&mut self, offset: i64) {
        self.in_hand.split_off(&offset);
        self.dead_letters.split_off(&offset);
    }

    /// The dead letters now free to store: those with no record in hand before them.
    fn releasable(&mut self) -> Option<i64> {
        let first_in_hand = self.in_hand.first().copied().unwrap_or(i64::MAX);
        let free: Vec<i64> = self
            .dead_letters
            .iter()
            .copied()
            .take_while(|offset| *offset < first_in_hand)
            .collect();
        for offset in &free {
            self.dead_letters.remove(offset);
        }
        free.last().copied()
    }
}

impl Progress {
    /// A valid record at `offset` goes to the caller.
    pub(super) fn handed_out(&mut self, topic: &str, partition: i32, offset: i64) {
        let entry = self.entry(topic, partition);
        entry.reread_from(offset);
        entry.in_hand.insert(offset);
    }

    /// A record at `offset` was dead-lettered: the position to store now (its own), or `None`
    /// while records before it are still in hand (it is stored when they are).
    pub(super) fn dead_lettered(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<i64> {
        let entry = self.entry(topic, partition);
        entry.reread_from(offset);
        entry.dead_letters.insert(offset);
        entry.releasable()
    }

    /// The caller finished everything up to and including `offset`: the position to store
    /// (`offset`, or a dead letter right behind it).
    pub(super) fn stored(&mut self, topic: &str, partition: i32, offset: i64) -> i64 {
        let entry = self.entry(topic, partition);
        entry.in_hand = entry.in_hand.split_off(&(offset + 1));
        entry
            .releasable()
            .map_or(offset, |released| released.max(offset))
    }

    fn entry(&mut self, topic: &str, partition: i32) -> &mut Partition {
        self.partitions
            .entry((topic.to_string(), partition))
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_with_nothing_before_it_in_hand_is_stored_at_once() {
        let mut progress = Progress::default();
        assert_eq!(progress.dead_lettered("t", 0, 5), Some(5));
    }

    #[test]
    fn a_dead_letter_behind_records_in_hand_waits_for_them() {
        let mut progress = Progress::default();
        progress.handed_out("t", 0, 10);
        progress.handed_out("t", 0, 11);
        assert_eq!(
            progress.dead_lettered("t", 0, 12),
            None,
            "10 and 11 in hand"
        );
        assert_eq!(progress.stored("t", 0, 10), 10, "11 still in hand");
        assert_eq!(
            progress.stored("t", 0, 11),
            12,
            "and the dead letter behind it"
        );
    }

    #[test]
    fn records_after_a_waiting_dead_letter_do_not_release_it_early() {
        let mut progress = Progress::default();
        progress.handed_out("t", 0, 1);
        assert_eq!(progress.dead_lettered("t", 0, 2), None);
        progress.handed_out("t", 0, 3);
        assert_eq!(
            progress.stored("t", 0, 1),
            2,
            "up to the dead letter, not past 3"
        );
        assert_eq!(progress.stored("t", 0, 3), 3);
    }

    #[test]
    fn partitions_are_independent() {
        let mut progress = Progress::default();
        progress.handed_out("t", 0, 1);
        assert_eq!(progress.dead_lettered("t", 1, 7), Some(7));
        assert_eq!(progress.dead_lettered("t", 0, 2), None);
    }

    #[test]
    fn a_record_read_again_drops_what_was_held_from_there_on() {
        let mut progress = Progress::default();
        progress.handed_out("t", 0, 4);
        assert_eq!(progress.dead_lettered("t", 0, 5), None);
        // Rewound to 4 (an aborted transaction, or a new owner from the committed offset).
        progress.handed_out("t", 0, 4);
        assert_eq!(
            progress.stored("t", 0, 4),
            4,
            "5 will be read and dead-lettered again"
        );
        assert_eq!(progress.dead_lettered("t", 0, 5), Some(5));
    }
}
