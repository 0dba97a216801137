//! `bot-responses` → Discord, exactly one reply per query, channels independent of each other.
//!
//! The consumer is at-least-once (`read_committed`, offsets stored after the post succeeded),
//! so a response can arrive twice (redelivery after a crash or rebalance). Three guards make the
//! reply happen once: a bounded in-memory set of answered query ids (same process); the
//! Discord `nonce` + `enforce_nonce` derived from the query id (a few minutes across restarts);
//! and, for a response that may be a redelivery, a look at the channel for the bot's own reply
//! (`crate::history`), which holds however long the bot was down.
//!
//! Each channel has its own worker (replies within a channel stay in order, idle workers end
//! after a while); a channel that is rate-limited, failing or refusing never holds up another:
//! handing a response to its channel never waits, so polling goes on however slow one channel
//! is. What bounds memory is the number of responses in hand ([`MAX_IN_FLIGHT`]): when it is
//! reached the consumer pauses its partitions and keeps polling (a member that stops polling
//! for `max.poll.interval.ms` is put out of its group), and resumes when posts finish.
//!
//! A response counts as answered only once Discord accepted its post: a copy that arrives while
//! the first is still queued (a redelivery after a rebalance) waits behind it in the same
//! channel and is then found answered. Offsets are stored per partition only up to the first
//! response not yet done ([`Progress`]), so a crash re-delivers every response whose post may
//! not have happened, and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtfm_core::kafka::{Consumer, Received};
use rtfm_core::BotResponse;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::metrics;
use crate::outbox::{Outbox, PostError, Target};
use crate::questions::Questions;
use crate::recent::RecentIds;
use crate::reply::{split_reply, DISCORD_LIMIT};

/// Responses read but not yet posted, across all channels (bounds memory and redelivery).
/// Large enough that one slow channel's backlog (Discord lets a channel take about five
/// messages in five seconds) leaves room for every other channel for a long while: a few KiB
/// each, so about 10 MiB at most.
pub const MAX_IN_FLIGHT: usize = 2048;
/// A channel's worker ends after this long without work (a new response starts another).
const IDLE_WORKER: Duration = Duration::from_secs(300);

/// An id Discord can be sent (0 is what a record without one carries).
fn sendable(id: impl Into<u64>) -> Option<u64> {
    Some(id.into()).filter(|id| *id != 0)
}

/// Per partition, the offsets read and whether they are done. The offset to store is the last
/// one of the done prefix: an offset is committed only when it and everything before it in its
/// partition was posted (or dead-lettered, or deliberately skipped).
#[derive(Debug, Default)]
pub struct Progress {
    partitions: HashMap<(String, i32), BTreeMap<i64, bool>>,
}

impl Progress {
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        self.partitions
            .entry((topic.to_string(), partition))
            .or_default()
            .insert(offset, false);
    }

    /// Marks `offset` done; returns the offset that may now be stored, if the done prefix grew.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let offsets = self.partitions.get_mut(&(topic.to_string(), partition))?;
        if let Some(done) = offsets.get_mut(&offset) {
            *done = true;
        }
        let mut stored = None;
        while let Some(entry) = offsets.first_entry() {
            if !*entry.get() {
                break;
            }
            stored = Some(*entry.key());
            entry.remove();
        }
        stored
    }
}

/// One response on its way to its channel.
struct Job {
    received: Received<BotResponse>,
    target: Target,
    /// `None` when it came in over the limit (a partition assigned while paused).
    _permit: Option<OwnedSemaphorePermit>,
}

/// What the workers share.
#[derive(Clone)]
struct Shared {
    consumer: Arc<Consumer<BotResponse>>,
    outbox: Outbox,
    progress: Arc<Mutex<Progress>>,
    /// Query ids whose answer Discord accepted (recent ones).
    answered: Arc<Mutex<RecentIds>>,
    /// Slash commands still owed their follow-up (an answer posted settles one).
    deferred: Arc<crate::interactions::Deferred>,
    shutdown: CancellationToken,
}

impl Shared {
    /// `received` is done (posted, dead-lettered or skipped): store what may be stored.
    fn done(&self, received: &Received<BotResponse>) {
        let stored = self
            .progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .finish(&received.topic, received.partition, received.offset);
        if let Some(offset) = stored {
            self.consumer
                .store_position(&received.topic, received.partition, offset);
        }
    }
}

/// Posts every response once. Returns on shutdown after committing the posted ones.
/// `only_pending`: console mode answers only the questions asked in this session.
pub async fn run(
    consumer: Arc<Consumer<BotResponse>>,
    outbox: Outbox,
    questions: Arc<Questions>,
    shutdown: CancellationToken,
    only_pending: bool,
) -> anyhow::Result<()> {
    let shared = Shared {
        consumer: Arc::clone(&consumer),
        outbox,
        progress: Arc::new(Mutex::new(Progress::default())),
        answered: Arc::new(Mutex::new(RecentIds::new(10_000))),
        deferred: Arc::clone(&questions.deferred),
        shutdown: shutdown.clone(),
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut paused = false;
    let mut channels: HashMap<u64, mpsc::UnboundedSender<Job>> = HashMap::new();
    let mut workers = JoinSet::new();
    let outcome = loop {
        // Full: stop fetching but keep polling (membership); room again: fetch again.
        let full = in_flight.available_permits() == 0;
        if full != paused {
            if full {
                consumer.pause_assigned();
                info!(
                    in_flight = MAX_IN_FLIGHT,
                    "responses in hand at the limit; pausing the partitions until posts finish"
                );
            } else {
                consumer.resume_assigned();
            }
            paused = full;
        }
        let received = if paused {
            // Polling on (paused partitions give nothing), looking up now and then for room.
            match consumer
                .recv_within(&shutdown, Duration::from_millis(200))
                .await
            {
                Ok(None) if !shutdown.is_cancelled() => continue,
                other => other,
            }
        } else {
            consumer.recv(&shutdown).await
        };
        let received = match received {
            Ok(Some(received)) => received,
            Ok(None) => break Ok(()),
            // Transient errors are absorbed by the consumer; this one ends the process.
            Err(err) => break Err(anyhow::Error::new(err).context("while consuming bot-responses")),
        };
        let permit = Arc::clone(&in_flight).try_acquire_owned().ok();
        shared
            .progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .begin(&received.topic, received.partition, received.offset);
        let response = &received.record;
        if shared.is_answered(response.query_id.as_str()) {
            metrics::DUPLICATES_SUPPRESSED.inc();
            info!(query_id = %response.query_id, "duplicate response suppressed");
            shared.done(&received);
            continue;
        }
        let target = match questions.take(response.query_id.as_str()) {
            Some(pending) => pending.target,
            None if only_pending => {
                shared.done(&received);
                continue;
            }
            None => match response_target(response) {
                Some(target) => target,
                None => {
                    shared.done(&received);
                    continue;
                }
            },
        };
        let channel = target.channel_id;
        let mut job = Job {
            received,
            target,
            _permit: permit,
        };
        // Never waits: a slow channel's backlog is its own (bounded by MAX_IN_FLIGHT overall).
        loop {
            let sender = channels.entry(channel).or_insert_with(|| {
                let (sender, receiver) = mpsc::unbounded_channel();
                workers.spawn(channel_worker(receiver, shared.clone()));
                sender
            });
            match sender.send(job) {
                Ok(()) => break,
                // Its worker ended (idle): start another.
                Err(mpsc::error::SendError(returned)) => {
                    channels.remove(&channel);
                    job = returned;
                }
            }
        }
        // Forget the senders of ended workers, and the finished workers themselves.
        if channels.len() > 1_000 {
            channels.retain(|_, sender| !sender.is_closed());
        }
        while workers.try_join_next().is_some() {}
    };
    // Let each worker finish the post in hand (or give up on shutdown), then commit what is done.
    drop(channels);
    while workers.join_next().await.is_some() {}
    if let Err(err) = consumer.commit().await {
        warn!(error = %err, "final commit of bot-responses failed; the answers in question will be checked against the channel before posting again");
    }
    outcome
}

/// Where a response goes when this process has no record of the question (asked before a
/// restart): the follow-up of its slash command while the interaction's token lives, else a
/// reply to the original message in its channel.
fn response_target(response: &BotResponse) -> Option<Target> {
    let channel_id = sendable(response.channel_id)?;
    if let Some(token) =
        crate::records::live_interaction_token(&response.metadata, chrono::Duration::seconds(30))
    {
        return Some(Target {
            channel_id,
            interaction_token: Some(token),
            ..Target::default()
        });
    }
    Some(Target {
        channel_id,
        reply_to: sendable(response.original_message_id),
        ..Target::default()
    })
}

impl Shared {
    fn is_answered(&self, query_id: &str) -> bool {
        self.answered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(query_id)
    }

    fn mark_answered(&self, query_id: &str) {
        self.answered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(query_id);
        self.deferred.remove(query_id);
    }
}

/// Posts the responses of one channel, in order; ends after [`IDLE_WORKER`] without work.
async fn channel_worker(mut jobs: mpsc::UnboundedReceiver<Job>, shared: Shared) {
    loop {
        let job = tokio::select! {
            job = jobs.recv() => job,
            _ = tokio::time::sleep(IDLE_WORKER) => {
                jobs.close();
                // Whatever arrived meanwhile is still ours to post.
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            }
        };
        let Some(job) = job else { return };
        if shared.is_answered(job.received.record.query_id.as_str()) {
            // A copy of a response this worker posted moments ago (queued behind it).
            metrics::DUPLICATES_SUPPRESSED.inc();
            info!(query_id = %job.received.record.query_id, "duplicate response suppressed");
            shared.done(&job.received);
            continue;
        }
        if !post_one(&job, &shared).await {
            return;
        }
    }
}

/// Posts one response (or what is missing of it); false when interrupted by shutdown, leaving
/// its offset unstored so it is read again.
async fn post_one(job: &Job, shared: &Shared) -> bool {
    let received = &job.received;
    let response = &received.record;
    let target = &job.target;
    let shutdown = &shared.shutdown;
    let parts = split_reply(&response.response_text, DISCORD_LIMIT);
    // A response that was already in the partition when we got it may have been posted by our
    // predecessor, which then died before committing. Discord's nonce catches that only for a
    // few minutes; the channel itself says so for as long as it keeps history.
    let mut first_part = 0;
    if received.maybe_redelivered {
        let original = sendable(response.original_message_id).unwrap_or_default();
        match shared
            .outbox
            .already_posted(target, original, &parts, shutdown)
            .await
        {
            Ok(posted) if posted == parts.len() => {
                shared.mark_answered(response.query_id.as_str());
                metrics::DUPLICATES_SUPPRESSED.inc();
                info!(query_id = %response.query_id, "answer already in the channel (posted before a restart); not posting it again");
                shared.done(received);
                return true;
            }
            Ok(posted) => first_part = posted,
            Err(err) => {
                if shutdown.is_cancelled() {
                    return false;
                }
                warn!(query_id = %response.query_id, error = %format!("{err:#}"), "could not check the channel for an earlier answer; posting (the nonce still guards recent duplicates)")
            }
        }
    }
    match shared
        .outbox
        .deliver_from(
            target,
            &parts,
            first_part,
            response.query_id.as_str(),
            sendable(response.original_message_id),
            shutdown,
        )
        .await
    {
        Ok(()) => {
            shared.mark_answered(response.query_id.as_str());
            metrics::REPLIES_POSTED.inc();
            info!(query_id = %response.query_id, parts = parts.len(), "answer posted");
        }
        Err(PostError::Shutdown) => return false,
        Err(err) => {
            if let PostError::Refused { status, .. } = &err {
                crate::setup::report_refused_channel(target.channel_id, *status);
            }
            error!(query_id = %response.query_id, channel_id = target.channel_id, error = %err, "Discord refused the answer; dead-lettering it");
            if !shared
                .consumer
                .dead_letter_record(received, &err.to_string(), shutdown)
                .await
            {
                return false;
            }
            // Refused for good: nothing more will be sent for this command.
            shared.deferred.remove(response.query_id.as_str());
        }
    }
    shared.done(received);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stored_only_up_to_the_first_response_not_yet_done() {
        let mut progress = Progress::default();
        for offset in 10..14 {
            progress.begin("t", 0, offset);
        }
        progress.begin("t", 1, 5);
        // Channel B finished offsets 12 and 13 before channel A finished 10 and 11.
        assert_eq!(progress.finish("t", 0, 12), None);
        assert_eq!(progress.finish("t", 0, 13), None);
        assert_eq!(progress.finish("t", 0, 10), Some(10));
        assert_eq!(
            progress.finish("t", 0, 11),
            Some(13),
            "the whole done prefix"
        );
        assert_eq!(
            progress.finish("t", 1, 5),
            Some(5),
            "partitions are independent"
        );
        assert_eq!(
            progress.finish("t", 2, 1),
            None,
            "unknown partition: nothing to store"
        );
    }
}
