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

use chrono::{DateTime, Utc};
use rtfm_core::backoff::Backoff;
use rtfm_core::ids::GuildId;
use rtfm_core::kafka::{Consumer, Follower, Producer};
use rtfm_core::schema::{parse_timestamp, ControlKind, Subject};
use rtfm_core::ControlRecord;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics;
use crate::store::{Field, Filter, VectorStore};

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
pub fn filter_of(guild: GuildId, subject: Subject) -> Filter {
    let guild_filter = Filter::Eq(Field::Guild, guild.into());
    match subject {
        Subject::Member(user) => {
            Filter::all_of([guild_filter, Filter::Eq(Field::Author, user.into())])
        }
        Subject::Channel(channel) => Filter::all_of([
            guild_filter,
            Filter::either([
                Filter::Eq(Field::Channel, channel.into()),
                Filter::Eq(Field::ThreadParent, channel.into()),
                Filter::Eq(Field::PrivateThreadParent, channel.into()),
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

/// A removal asked for: of what, by which request, chosen when.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub guild: GuildId,
    pub subject: Subject,
    pub request: String,
    pub at: DateTime<Utc>,
}

/// What a control record asks to remove, if anything.
pub fn asked(record: &ControlRecord) -> Option<Asked> {
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
    Some(Asked {
        guild: record.guild_id,
        subject,
        request,
        at: parse_timestamp(&record.at).unwrap_or_default(),
    })
}

/// Slack on a member's removal: what they wrote up to this long after the choice (by Discord's
/// clock, against the bot's) is taken too; what they write after a later remember-me is not.
const CLOCK_SLACK_SECS: f64 = 60.0;

impl Removal {
    /// Waits, through outages, until the state holds every choice written so far; `None` on
    /// shutdown.
    async fn current(&self, stop: &CancellationToken) -> Option<()> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            match self.follower.caught_up(Duration::from_secs(10)).await {
                Ok(()) => return Some(()),
                Err(err) => {
                    warn!(error = %err, "waiting for the community's choices before removing anything");
                    if !backoff.wait(stop).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether the choice behind `asked` still holds: no later remember-me, inclusion or
    /// return to the server took it back (a later choice to the same effect keeps it).
    fn still_chosen(&self, asked: &Asked) -> bool {
        let state = self.follower.state();
        let choice = match asked.subject {
            Subject::Member(user) => state.member(asked.guild, user),
            Subject::Channel(channel) => state.channel(asked.guild, channel),
            Subject::Guild => state.guild(asked.guild),
        };
        choice.is_some_and(|choice| !choice.indexed && choice.at >= asked.at)
    }

    /// Removes what `asked` names, with receipts; `None` on shutdown. Each deletion happens
    /// only while the choice still holds, after the state was read to its end.
    pub async fn remove(&self, asked: &Asked, stop: &CancellationToken) -> Option<u64> {
        let Asked {
            guild,
            subject,
            request,
            ..
        } = asked;
        let (guild, subject) = (*guild, *subject);
        self.current(stop).await?;
        let recorded = self
            .follower
            .state()
            .receipt(guild, subject)
            .filter(|receipt| receipt.request_id == *request)
            .cloned();
        if recorded.as_ref().is_some_and(|receipt| receipt.done) {
            return recorded.map(|receipt| receipt.removed);
        }
        let mut removed = recorded.map_or(0, |receipt| receipt.removed);
        if !self.still_chosen(asked) {
            info!(
                guild_id = %guild,
                subject = label(subject),
                "the choice was taken back before its removal; nothing removed"
            );
            self.receipt(guild, subject, request, removed, true, stop)
                .await?;
            return Some(removed);
        }
        let mut filter = filter_of(guild, subject);
        if let Subject::Member(_) = subject {
            let until = asked.at.timestamp_millis() as f64 / 1000.0 + CLOCK_SLACK_SECS;
            filter = Filter::all_of([filter, Filter::Between(Field::Epoch, f64::MIN, until)]);
        }
        let started = std::time::Instant::now();
        // Killed after counting before: what is left is part of the recorded count.
        removed = removed.max(self.count(&filter, stop).await?);
        self.receipt(guild, subject, request, removed, false, stop)
            .await?;
        for sweep in 0..2 {
            if sweep == 1 {
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(self.settle) => {}
                }
            }
            self.current(stop).await?;
            if !self.still_chosen(asked) {
                break;
            }
            if sweep == 1 {
                // What a batch being indexed as the choice arrived still wrote.
                removed += self.count(&filter, stop).await?;
            }
            self.delete(&filter, stop).await?;
        }
        self.receipt(guild, subject, request, removed, true, stop)
            .await?;
        metrics::REMOVED
            .with_label_values(&[label(subject)])
            .inc_by(removed);
        info!(
            guild_id = %guild,
            subject = label(subject),
            removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "removal done"
        );
        Some(removed)
    }

    async fn receipt(
        &self,
        guild: GuildId,
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
        if let Some(asked) = asked(&received.record) {
            if removal.remove(&asked, &stop).await.is_none() {
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

/// Removes the data of guilds RTFM left more than `grace` ago, checked every `every`, on the
/// processor that holds `rtfm-control` in the applier group (one at a time, so receipts do not
/// race); a removal already done is not done again.
pub async fn sweep_removed_guilds(
    removal: Removal,
    applier: Arc<Consumer<ControlRecord>>,
    grace: Duration,
    every: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
        if applier.assigned_partitions().is_empty() || removal.current(&stop).await.is_none() {
            continue;
        }
        let due: Vec<Asked> = {
            let state = removal.follower.state();
            state
                .removed_guilds()
                .into_iter()
                .filter(|(_, left)| (Utc::now() - *left).to_std().unwrap_or_default() >= grace)
                .map(|(guild, left)| Asked {
                    guild,
                    subject: Subject::Guild,
                    request: format!("guild:{guild}@{}", left.to_rfc3339()),
                    at: left,
                })
                .filter(|asked| {
                    state
                        .receipt(asked.guild, Subject::Guild)
                        .is_none_or(|receipt| receipt.request_id != asked.request || !receipt.done)
                })
                .collect()
        };
        for asked in due {
            if removal.remove(&asked, &stop).await.is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_choice_to_stop_indexing_asks_for_a_removal() {
        let forget = ControlRecord::member(1.into(), 2.into(), false).requested(2.into(), "i-1");
        let removal = asked(&forget).expect("a removal");
        assert_eq!(
            (removal.guild, removal.subject, removal.request.as_str()),
            (GuildId::new(1), Subject::Member(2.into()), "i-1")
        );
        assert_eq!(
            asked(&ControlRecord::member(1.into(), 2.into(), true)),
            None
        );
        let deleted = ControlRecord::channel(1.into(), 3.into(), false, "channel deleted");
        let removal = asked(&deleted).expect("a removal");
        assert_eq!(removal.subject, Subject::Channel(3.into()));
        assert!(removal.request.starts_with("channel:1:3@"));
        assert_eq!(
            asked(&ControlRecord::presence(1.into(), false, "removed")),
            None
        );
        assert_eq!(
            asked(&ControlRecord::receipt(
                1.into(),
                Subject::Member(2.into()),
                "i-1",
                3,
                true
            )),
            None
        );
    }
}
