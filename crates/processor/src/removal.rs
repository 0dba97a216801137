//! Carrying out what the community chose to remove, once per choice across every processor
//! (the `rtfm-control-applier` consumer group): a member's messages after forget-me, a
//! channel's (and its threads') after it was excluded or deleted, a guild's after RTFM was
//! removed from it and the grace period passed.
//!
//! Each removal is counted before anything is deleted, and the count is written to
//! `rtfm-control` as a receipt (`done: false`) first: a processor killed half-way re-reads the
//! choice (its offset is committed only after the receipt says `done`), deletes what is left,
//! and reports the count it recorded, so the receipt stays exact. A second sweep
//! [`Removal::settle`] after the first takes what a batch being indexed as the choice arrived
//! still wrote (ingestion checks the choices before every attempt, so only a batch already
//! past that check can). Queries never waited for any of this: they filter at read time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rtfm_core::backoff::Backoff;
use rtfm_core::kafka::{Consumer, Follower, Producer};
use rtfm_core::schema::{ControlKind, Subject};
use rtfm_core::ControlRecord;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics;
use crate::store::{Field, Filter, Scalar, VectorStore};

/// What removals need.
#[derive(Clone)]
pub struct Removal {
    /// The messages' store (counted for the receipt).
    pub messages: Arc<dyn VectorStore>,
    /// Other stores that keep per-member data ("asked before?" questions): cleaned, not counted.
    pub others: Vec<Arc<dyn VectorStore>>,
    pub producer: Producer,
    pub follower: Arc<Follower>,
    /// Pause before the second sweep.
    pub settle: Duration,
}

/// The store filter of what a removal takes.
pub fn filter_of(guild: u64, subject: Subject) -> Filter {
    let guild_filter = Filter::Eq(Field::Guild, Scalar::Text(guild.to_string()));
    match subject {
        Subject::Member(user) => Filter::all_of([
            guild_filter,
            Filter::Eq(Field::Author, Scalar::Text(user.to_string())),
        ]),
        Subject::Channel(channel) => Filter::all_of([
            guild_filter,
            Filter::either([
                Filter::Eq(Field::Channel, Scalar::Text(channel.to_string())),
                Filter::Eq(Field::ThreadParent, Scalar::Text(channel.to_string())),
            ]),
        ]),
        Subject::Guild => guild_filter,
    }
}

fn label(subject: Subject) -> &'static str {
    match subject {
        Subject::Member(_) => "member",
        Subject::Channel(_) => "channel",
        Subject::Guild => "guild",
    }
}

/// What a control record asks to remove, if anything.
pub fn asked(record: &ControlRecord) -> Option<(u64, Subject, String)> {
    if record.indexed != Some(false) {
        return None;
    }
    let subject = match record.kind {
        ControlKind::Member | ControlKind::Channel => record.subject()?,
        // After the grace period ([`sweep_removed_guilds`]), not at once.
        ControlKind::Guild | ControlKind::Receipt | ControlKind::Solved => return None,
    };
    let request = record
        .request_id
        .clone()
        .unwrap_or_else(|| format!("{}@{}", record.compaction_key(), record.at));
    Some((record.guild(), subject, request))
}

impl Removal {
    /// Removes what `subject` of `guild` has stored, with receipts; `None` on shutdown.
    pub async fn remove(
        &self,
        guild: u64,
        subject: Subject,
        request: &str,
        stop: &CancellationToken,
    ) -> Option<u64> {
        let recorded = self
            .follower
            .state()
            .receipt(guild, subject)
            .filter(|receipt| receipt.request_id == request)
            .cloned();
        if recorded.as_ref().is_some_and(|receipt| receipt.done) {
            return recorded.map(|receipt| receipt.removed);
        }
        let filter = filter_of(guild, subject);
        let started = std::time::Instant::now();
        let found = self.count(&filter, stop).await?;
        // Killed after counting before: what is left is part of the recorded count.
        let mut removed = found.max(recorded.map_or(0, |receipt| receipt.removed));
        self.receipt(guild, subject, request, removed, false, stop)
            .await?;
        self.delete(&filter, stop).await?;
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(self.settle) => {}
        }
        let late = self.count(&filter, stop).await?;
        if late > 0 {
            self.delete(&filter, stop).await?;
            removed += late;
        }
        self.receipt(guild, subject, request, removed, true, stop)
            .await?;
        metrics::REMOVED
            .with_label_values(&[label(subject)])
            .inc_by(removed);
        info!(
            guild_id = guild,
            subject = label(subject),
            removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "removal done"
        );
        Some(removed)
    }

    async fn receipt(
        &self,
        guild: u64,
        subject: Subject,
        request: &str,
        removed: u64,
        done: bool,
        stop: &CancellationToken,
    ) -> Option<()> {
        let receipt = ControlRecord::receipt(guild, subject, request, removed, done);
        self.producer.send_until_acked(&receipt, stop).await?;
        Some(())
    }

    /// Messages `filter` selects in the messages' store, asked until the store answers.
    async fn count(&self, filter: &Filter, stop: &CancellationToken) -> Option<u64> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            match self.messages.tally(filter, Field::Guild).await {
                Ok(found) => return Some(found.values().sum::<usize>() as u64),
                Err(err) => {
                    warn!(error = %err, "could not count what to remove; retrying");
                    if !backoff.wait(stop).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Deletes what `filter` selects from every store, through outages.
    async fn delete(&self, filter: &Filter, stop: &CancellationToken) -> Option<()> {
        for store in std::iter::once(&self.messages).chain(&self.others) {
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
            while let Err(err) = store.delete_where(filter).await {
                warn!(store = store.location(), error = %err, "could not remove; retrying (nothing chosen to be removed is left behind)");
                if !backoff.wait(stop).await {
                    return None;
                }
            }
        }
        Some(())
    }
}

/// Applies each choice on `rtfm-control` once (the applier group); commits after each.
pub async fn run(
    consumer: Arc<Consumer<ControlRecord>>,
    removal: Removal,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    while let Some(received) = consumer.recv(&stop).await? {
        if let Some((guild, subject, request)) = asked(&received.record) {
            if removal
                .remove(guild, subject, &request, &stop)
                .await
                .is_none()
            {
                break; // shutdown half-way: the choice is read again after a restart
            }
        }
        consumer.store(&received);
        consumer.commit_soon();
    }
    if let Err(err) = consumer.commit().await {
        warn!(error = %err, "final commit of rtfm-control failed; the last choices will be applied again (harmless)");
    }
    Ok(())
}

/// Removes the data of guilds RTFM left more than `grace` ago, checked every `every`. Every
/// processor may run it: a removal already done is not done again.
pub async fn sweep_removed_guilds(
    removal: Removal,
    grace: Duration,
    every: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let due: Vec<(u64, String)> = {
            let state = removal.follower.state();
            state
                .removed_guilds()
                .into_iter()
                .filter(|(_, left)| (Utc::now() - *left).to_std().unwrap_or_default() >= grace)
                .map(|(guild, left)| (guild, format!("guild:{guild}@{}", left.to_rfc3339())))
                .filter(|(guild, request)| {
                    state
                        .receipt(*guild, Subject::Guild)
                        .is_none_or(|receipt| receipt.request_id != *request || !receipt.done)
                })
                .collect()
        };
        for (guild, request) in due {
            if removal
                .remove(guild, Subject::Guild, &request, &stop)
                .await
                .is_none()
            {
                return Ok(());
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_choice_to_stop_indexing_asks_for_a_removal() {
        let forget = ControlRecord::member(1, 2, false).requested(2, "i-1");
        assert_eq!(
            asked(&forget),
            Some((1, Subject::Member(2), "i-1".to_string()))
        );
        assert_eq!(asked(&ControlRecord::member(1, 2, true)), None);
        let deleted = ControlRecord::channel(1, 3, false, "channel deleted");
        let (_, subject, request) = asked(&deleted).expect("a removal");
        assert_eq!(subject, Subject::Channel(3));
        assert!(request.starts_with("channel:1:3@"));
        assert_eq!(asked(&ControlRecord::presence(1, false, "removed")), None);
        assert_eq!(
            asked(&ControlRecord::receipt(
                1,
                Subject::Member(2),
                "i-1",
                3,
                true
            )),
            None
        );
    }
}
