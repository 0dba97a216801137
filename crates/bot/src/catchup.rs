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
//! limiter in production, [`crate::history::page`]'s backoff on 429). A channel the bot may not
//! read is skipped. Marks move only after a channel's questions were asked, so an interruption
//! (shutdown, crash) resumes from the last finished channel.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serenity::all::{
    ChannelId, ChannelType, GetMessages, GuildChannel, GuildId, Http, Message, MessageId,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::discord::{incoming_from, ChannelInfo};
use crate::outbox::{Outbox, Target};
use crate::pipeline::{Pipeline, Via};
use crate::trigger::Detected;

/// One channel (or thread) to catch up.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: u64,
    pub guild_id: Option<u64>,
    pub info: ChannelInfo,
    /// Discord's newest message of the channel, when the listing says.
    pub last_message_id: Option<u64>,
}

impl Channel {
    fn of(channel: &GuildChannel, guild: u64) -> Self {
        Self {
            id: channel.id.get(),
            guild_id: Some(guild),
            last_message_id: channel.last_message_id.map(MessageId::get),
            info: ChannelInfo::of(channel),
        }
    }
}

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
        for channel in list_guild(&context.http, *guild).await {
            channels.insert(channel.id, channel);
        }
    }
    for id in marks.channels() {
        channels.entry(id).or_insert_with(|| Channel {
            id,
            guild_id: None,
            info: ChannelInfo::default(),
            last_message_id: None,
        });
    }
    report.complete = true;
    for channel in channels.values() {
        if context.shutdown.is_cancelled() {
            report.complete = false;
            break;
        }
        report.channels += 1;
        let since = marks.get(channel.id).unwrap_or(newest);
        if channel.last_message_id.is_some_and(|last| last <= since) {
            report.quiet += 1;
            marks.finish_channel(channel.id, None);
            continue;
        }
        match catch_up_channel(context, channel, since, &mut report).await {
            Ok(caught_up_to) => marks.finish_channel(channel.id, caught_up_to),
            Err(err) if context.shutdown.is_cancelled() => {
                debug!(error = %format!("{err:#}"), "catch-up interrupted by shutdown");
                report.complete = false;
                break;
            }
            Err(err) => {
                // No access (403), gone (404): nothing the bot can read there.
                info!(channel_id = channel.id, error = %format!("{err:#}"), "channel not caught up");
                marks.finish_channel(channel.id, None);
            }
        }
    }
    marks.end_catch_up(report.complete);
    if let Err(err) = marks.save() {
        warn!(error = %format!("{err:#}"), "could not save the high-water marks");
    }
    report
}

/// The text channels and active threads of `guild` (none if Discord refuses: logged).
async fn list_guild(http: &Http, guild: u64) -> Vec<Channel> {
    let guild_id = GuildId::new(guild.max(1));
    let mut found = Vec::new();
    match http.get_channels(guild_id).await {
        Ok(channels) => found.extend(
            channels
                .into_iter()
                .filter(|channel| {
                    matches!(
                        channel.kind,
                        ChannelType::Text | ChannelType::News | ChannelType::Voice
                    )
                })
                .map(|channel| Channel::of(&channel, guild)),
        ),
        Err(err) => {
            warn!(guild_id = guild, error = %err, "could not list the guild's channels to catch up")
        }
    }
    match http.get_guild_active_threads(guild_id).await {
        Ok(threads) => found.extend(
            threads
                .threads
                .iter()
                .map(|thread| Channel::of(thread, guild)),
        ),
        Err(err) => {
            warn!(guild_id = guild, error = %err, "could not list the guild's active threads to catch up")
        }
    }
    found
}

/// Publishes what `channel` said after `since`; asks its unanswered recent triggers. Returns
/// the newest message read (the channel's new mark).
async fn catch_up_channel(
    context: &Context,
    channel: &Channel,
    since: u64,
    report: &mut Report,
) -> anyhow::Result<Option<u64>> {
    let channel_id = ChannelId::new(channel.id.max(1));
    let pipeline = &context.pipeline;
    let mut after = since;
    let mut newest = None;
    let mut answered = HashSet::new();
    let mut triggers = Vec::new();
    loop {
        let mut page = crate::history::page(
            &context.http,
            channel_id,
            GetMessages::new()
                .after(MessageId::new(after.max(1)))
                .limit(100),
            &context.shutdown,
        )
        .await?;
        page.sort_by_key(|message| message.id);
        let full = page.len() == 100;
        for message in &page {
            after = after.max(message.id.get());
            newest = Some(after);
            if message.author.id.get() == context.bot_id {
                answered.extend(replied_to(message));
                continue;
            }
            if message.author.bot {
                continue;
            }
            let incoming = incoming_from(message, channel.guild_id, &channel.info);
            let Some(detected) = pipeline
                .publish(&incoming, Some(context.bot_id), &context.shutdown)
                .await?
            else {
                continue; // met live first
            };
            report.published += 1;
            if detected != Detected::None {
                triggers.push((incoming, detected, message.timestamp.unix_timestamp()));
            }
        }
        if !full {
            break;
        }
    }
    let oldest_asked = (chrono::Utc::now() - context.max_age).timestamp();
    let outbox = Outbox::Discord(Arc::clone(&context.http));
    for (incoming, detected, posted_at) in triggers {
        if answered.contains(&incoming.message_id) || posted_at < oldest_asked {
            report.not_asked += 1;
            continue;
        }
        let target = Target {
            channel_id: incoming.channel_id,
            reply_to: Some(incoming.message_id),
            ..Target::default()
        };
        pipeline
            .on_trigger(
                &incoming,
                detected,
                target,
                Via::Message,
                &outbox,
                &context.shutdown,
            )
            .await?;
        report.asked += 1;
    }
    if report.published > 0 {
        info!(
            channel_id = channel.id,
            published = report.published,
            "channel caught up"
        );
    }
    Ok(newest)
}

/// The message one of the bot's own messages replies to.
fn replied_to(message: &Message) -> Option<u64> {
    message
        .message_reference
        .as_ref()
        .and_then(|reference| reference.message_id)
        .map(MessageId::get)
}
