//! Catching up on what was said while the bot was away.
//!
//! Discord replays missed events only to a *resumed* gateway session; a new session (every
//! start, deploy or crash of the bot, and every reconnect that cannot resume) gets nothing of
//! what was posted in between. So on every READY the bot reads, per channel it can see (and
//! active thread), the history after its durable high-water mark ([`crate::marks`]), oldest
//! first, 100 messages a page: each human message is published like a live one, and a trigger
//! among them younger than `QUERY_MAX_AGE_SECS` that the bot has not answered (no reply of its
//! own to it in the channel) is asked — once: its question id is derived from the message id.
//!
//! Bounded: a channel whose `last_message_id` is not newer than its mark costs no request; a
//! long outage is paged at 100 messages a request within Discord's rate limits (serenity's
//! limiter in production, [`crate::history::page`]'s backoff on 429), by the engine `bot
//! backfill` runs too ([`crate::walk`]). A channel the bot may not read is skipped. Marks move only after a channel's questions were asked, so an interruption
//! (shutdown, crash) resumes from the last finished channel.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{Http, Message};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::listing::{self, Channel, Threads};
use crate::outbox::{Outbox, Target};
use crate::pipeline::{Pipeline, Via};
use crate::records::Incoming;
use crate::trigger::Detected;
use crate::view::{incoming_from, replies_to};
use crate::walk::{self, Begin, Direction, End};

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub channels: usize,
    /// Channels skipped without a request (nothing newer than the mark).
    pub quiet: usize,
    pub published: usize,
    pub asked: usize,
    /// Triggers not asked: answered already, or older than `QUERY_MAX_AGE_SECS`.
    pub not_asked: usize,
    pub complete: bool,
}

/// Runs one catch-up at a time; a READY during a run asks for another run after it.
#[derive(Debug)]
pub struct CatchUp {
    running: AtomicBool,
    again: AtomicBool,
    idle: tokio::sync::watch::Sender<bool>,
}

impl Default for CatchUp {
    fn default() -> Self {
        Self {
            running: AtomicBool::new(false),
            again: AtomicBool::new(false),
            idle: tokio::sync::watch::Sender::new(true),
        }
    }
}

/// What a run needs.
#[derive(Clone)]
pub struct Context {
    pub http: Arc<Http>,
    pub pipeline: Arc<Pipeline>,
    pub bot_id: u64,
    /// Triggers older than this are published but not asked.
    pub max_age: chrono::Duration,
    pub shutdown: CancellationToken,
}

impl CatchUp {
    /// Starts a catch-up of `guilds` (and every channel with a mark) in the background.
    pub fn start(self: &Arc<Self>, context: Context, guilds: Vec<u64>) {
        if self.running.swap(true, Ordering::AcqRel) {
            self.again.store(true, Ordering::Release);
            return;
        }
        self.idle.send_replace(false);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let report = run(&context, &guilds).await;
                info!(
                    channels = report.channels,
                    quiet = report.quiet,
                    published = report.published,
                    asked = report.asked,
                    not_asked = report.not_asked,
                    complete = report.complete,
                    "caught up with what was said while the bot was away"
                );
                if !this.again.swap(false, Ordering::AcqRel) || context.shutdown.is_cancelled() {
                    break;
                }
            }
            this.running.store(false, Ordering::Release);
            this.idle.send_replace(true);
        });
    }

    /// Waits until no catch-up runs (one stops soon after shutdown, having saved its marks).
    pub async fn wait_idle(&self) {
        let mut idle = self.idle.subscribe();
        let _ = idle.wait_for(|idle| *idle).await;
    }
}

/// One catch-up over every channel of `guilds` and every channel with a mark.
pub async fn run(context: &Context, guilds: &[u64]) -> Report {
    let marks = Arc::clone(&context.pipeline.marks);
    let mut report = Report::default();
    if !marks.had_earlier_run() {
        info!("no earlier run recorded here: nothing to catch up (`bot backfill` publishes a channel's history)");
        report.complete = true;
        return report;
    }
    let Some(newest) = marks.newest() else {
        report.complete = true;
        return report;
    };
    marks.begin_catch_up();
    let mut channels = BTreeMap::new();
    for guild in guilds {
        for channel in listing::guild(&context.http, *guild, Threads::Active).await {
            channels.insert(channel.id, channel);
        }
    }
    for id in marks.channels() {
        channels.entry(id).or_insert_with(|| Channel::bare(id));
    }
    let channels: Vec<Channel> = channels.into_values().collect();
    let sink = CatchUpSink {
        context,
        newest,
        counts: Counts::default(),
    };
    let options = walk::Options {
        direction: Direction::Forward,
        concurrency: 4,
        limit: None,
        label: "catch-up",
        report_every: Duration::from_secs(10),
        watcher: None,
    };
    let walked = walk::run(&context.http, &channels, &options, &sink, &context.shutdown).await;
    report.channels = walked.channels;
    report.complete = walked.finished() && !context.shutdown.is_cancelled();
    report.quiet = sink.counts.quiet.load(Ordering::Relaxed);
    report.published = sink.counts.published.load(Ordering::Relaxed);
    report.asked = sink.counts.asked.load(Ordering::Relaxed);
    report.not_asked = sink.counts.not_asked.load(Ordering::Relaxed);
    marks.end_catch_up(report.complete);
    if let Err(err) = marks.save() {
        warn!(error = %format!("{err:#}"), "could not save the high-water marks");
    }
    report
}

#[derive(Debug, Default)]
struct Counts {
    quiet: AtomicUsize,
    published: AtomicUsize,
    asked: AtomicUsize,
    not_asked: AtomicUsize,
}

/// Publishes what each channel said after its mark, then asks its unanswered recent triggers
/// and moves its mark.
struct CatchUpSink<'a> {
    context: &'a Context,
    /// The newest mark of all: where a channel without one starts.
    newest: u64,
    counts: Counts,
}

/// What a channel's catch-up collects.
#[derive(Debug, Default)]
struct Caught {
    newest: Option<u64>,
    /// Messages the bot replied to.
    answered: HashSet<u64>,
    triggers: Vec<(Incoming, Detected, i64)>,
}

impl walk::Sink for CatchUpSink<'_> {
    type Channel = Caught;

    fn begin(&self, channel: &Channel) -> Option<Begin<Caught>> {
        let marks = &self.context.pipeline.marks;
        let since = marks.get(channel.id).unwrap_or(self.newest);
        if channel.last_message_id.is_some_and(|last| last <= since) {
            self.counts.quiet.fetch_add(1, Ordering::Relaxed);
            marks.finish_channel(channel.id, None);
            return None;
        }
        Some(Begin {
            cursor: Some(since),
            read: 0,
            state: Caught::default(),
        })
    }

    async fn page(
        &self,
        channel: &Channel,
        caught: &mut Caught,
        page: &[Message],
        cursor: u64,
    ) -> anyhow::Result<()> {
        let context = self.context;
        caught.newest = Some(cursor);
        for message in page {
            if message.author.id.get() == context.bot_id {
                caught.answered.extend(replies_to(message));
                continue;
            }
            if message.author.bot {
                continue;
            }
            let incoming = incoming_from(message, channel.guild_id, &channel.info);
            let Some(detected) = context
                .pipeline
                .publish(&incoming, Some(context.bot_id), &context.shutdown)
                .await?
            else {
                continue; // met live first
            };
            self.counts.published.fetch_add(1, Ordering::Relaxed);
            if detected != Detected::None {
                caught
                    .triggers
                    .push((incoming, detected, message.timestamp.unix_timestamp()));
            }
        }
        Ok(())
    }

    async fn end(&self, channel: &Channel, caught: Caught, end: &End) {
        let marks = &self.context.pipeline.marks;
        match end {
            End::Complete => match self.ask(caught.answered, caught.triggers).await {
                Ok(()) => marks.finish_channel(channel.id, caught.newest),
                Err(_) if self.context.shutdown.is_cancelled() => {}
                Err(err) => {
                    info!(channel_id = channel.id, error = %format!("{err:#}"), "channel not caught up");
                    marks.finish_channel(channel.id, None);
                }
            },
            // No access (403), gone (404): nothing the bot can read there.
            End::Refused(_) | End::Failed(_) => marks.finish_channel(channel.id, None),
            End::Interrupted => {}
        }
    }
}

impl CatchUpSink<'_> {
    /// Asks the triggers the bot has not answered and that are recent enough.
    async fn ask(
        &self,
        answered: HashSet<u64>,
        triggers: Vec<(Incoming, Detected, i64)>,
    ) -> anyhow::Result<()> {
        let context = self.context;
        let oldest_asked = (chrono::Utc::now() - context.max_age).timestamp();
        let outbox = Outbox::Discord(Arc::clone(&context.http));
        for (incoming, detected, posted_at) in triggers {
            if answered.contains(&incoming.message_id) || posted_at < oldest_asked {
                self.counts.not_asked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let target = Target {
                channel_id: incoming.channel_id,
                reply_to: Some(incoming.message_id),
                ..Target::default()
            };
            context
                .pipeline
                .on_trigger(
                    &incoming,
                    detected,
                    target,
                    Via::Message,
                    &outbox,
                    &context.shutdown,
                )
                .await?;
            self.counts.asked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
