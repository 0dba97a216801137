//! `bot backfill --guild ID | --channel ID …`: publishes history to `discord-messages`.
//!
//! A guild means every text channel, thread (active and archived, public and the private ones
//! the bot can read) and forum post of it; a channel means it and its threads (or one thread).
//! Each channel is read newest to oldest — the recent history is the useful part — by the
//! engine the downtime catch-up runs too ([`crate::walk`]), a few channels at once, within
//! Discord's rate limits (serenity's limiter), with progress and an ETA in the logs.
//!
//! Resumable and durable: after each page is acknowledged by Kafka, the channel's position is
//! written to a checkpoint file in `BOT_STATE_DIR` (a volume under compose, so `docker compose
//! run --rm bot bot backfill …` resumes where the last one stopped, whichever container ran it). A
//! channel read to its end is skipped by a re-run until the whole run finished; then its
//! entry is removed, so the next backfill starts afresh (a channel Discord refused keeps its
//! position for the next run). Re-publishing a message is harmless
//! (the processor upserts by message id), so an interruption at any point loses nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use rtfm_core::kafka::Producer;
use rtfm_core::MessageEvent;
use serde::{Deserialize, Serialize};
use serenity::all::{Http, Message};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::listing::{self, Channel, Threads};
use crate::records;
use crate::trigger::{Detected, Triggers};
use crate::view::incoming_from;
use crate::walk::{self, Begin, Direction, End};

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["guild", "channel"])))]
pub struct BackfillArgs {
    /// Every channel, thread and forum post of this guild (repeatable).
    #[arg(long)]
    pub guild: Vec<u64>,
    /// This channel and its threads, a forum and its posts, or one thread (repeatable).
    #[arg(long)]
    pub channel: Vec<u64>,
    /// At most this many messages per channel (default: the whole history).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start below this message id (default: the newest message, or the checkpoint).
    #[arg(long)]
    pub before: Option<u64>,
    /// Channels read at once (each channel's history is a rate-limit bucket of its own;
    /// docs/benchmarks.md measures 4, 8 and 16).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Checkpoint file (default: `backfill<KAFKA_TOPIC_SUFFIX>.json` in `BOT_STATE_DIR`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub channels: usize,
    /// Messages published for these channels, by this run and the interrupted ones before it.
    pub published: usize,
    /// Channels Discord would not show (no access, gone); a re-run resumes them.
    pub refused: usize,
    /// Not interrupted (every channel read to its end, or refused).
    pub complete: bool,
}

/// The checkpoint file's content (ids as strings, as Discord writes them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    channels: BTreeMap<String, Position>,
}

/// How far one channel's backfill went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Position {
    /// The oldest message read: the next page is older.
    before: Option<String>,
    read: usize,
    published: usize,
    done: bool,
}

/// The checkpoints, written after every page.
struct Checkpoints {
    path: PathBuf,
    saved: Mutex<Saved>,
}

impl Checkpoints {
    fn load(path: PathBuf) -> anyhow::Result<Self> {
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a backfill checkpoint file; remove it to start over",
                    path.display()
                )
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Saved {
                version: 1,
                ..Saved::default()
            },
            Err(err) => {
                return Err(err).with_context(|| format!("while reading {}", path.display()))
            }
        };
        Ok(Self {
            path,
            saved: Mutex::new(saved),
        })
    }

    fn get(&self, channel: u64) -> Position {
        self.lock()
            .channels
            .get(&channel.to_string())
            .cloned()
            .unwrap_or_default()
    }

    /// Changes a channel's position and writes the file (under the lock: never an older
    /// state over a newer one).
    fn update(&self, channel: u64, change: impl FnOnce(&mut Position)) -> anyhow::Result<()> {
        let mut saved = self.lock();
        change(saved.channels.entry(channel.to_string()).or_default());
        self.write(&saved)
    }

    /// Forgets those of `channels` read to their end (a finished run: the next one starts
    /// afresh); removes the file when nothing is left.
    fn forget_done(&self, channels: &[Channel]) -> anyhow::Result<()> {
        let mut saved = self.lock();
        for channel in channels {
            let id = channel.id.to_string();
            if saved
                .channels
                .get(&id)
                .is_some_and(|position| position.done)
            {
                saved.channels.remove(&id);
            }
        }
        if saved.channels.is_empty() {
            match std::fs::remove_file(&self.path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    Err(err).with_context(|| format!("while removing {}", self.path.display()))
                }
                _ => Ok(()),
            }
        } else {
            self.write(&saved)
        }
    }

    fn write(&self, saved: &Saved) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("while creating {}", dir.display()))?;
        }
        let bytes = serde_json::to_vec_pretty(saved)?;
        crate::marks::replace_file(&self.path, &bytes)
            .with_context(|| format!("while writing {}", self.path.display()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.saved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the backfill needs besides Discord.
pub struct Publisher<'a> {
    pub producer: &'a Producer,
    pub triggers: &'a Triggers,
    /// The bot's user id, for mention triggers.
    pub bot_id: Option<u64>,
}

/// Publishes the pages of a backfill and keeps their checkpoints.
struct Sink<'a> {
    publisher: Publisher<'a>,
    checkpoints: &'a Checkpoints,
    before: Option<u64>,
    published: AtomicUsize,
}

impl walk::Sink for Sink<'_> {
    type Channel = ();

    fn begin(&self, channel: &Channel) -> Option<Begin<()>> {
        let position = self.checkpoints.get(channel.id);
        if position.done {
            return None;
        }
        let checkpoint = position.before.as_deref().and_then(|id| id.parse().ok());
        if checkpoint.is_some() {
            info!(
                channel_id = channel.id,
                read = position.read,
                "resuming from the checkpoint"
            );
        }
        Some(Begin {
            cursor: self.before.or(checkpoint),
            read: position.read,
            state: (),
        })
    }

    async fn page(
        &self,
        channel: &Channel,
        _: &mut (),
        page: &[Message],
        cursor: u64,
    ) -> anyhow::Result<()> {
        let records: Vec<_> = page
            .iter()
            .filter(|message| !message.author.bot)
            .map(|message| {
                let incoming = incoming_from(message, channel.guild_id, &channel.info);
                let mut record = records::discord_message(&incoming, MessageEvent::Create);
                record.is_trigger = self
                    .publisher
                    .triggers
                    .detect(&incoming.content, self.publisher.bot_id)
                    != Detected::None;
                record
            })
            .collect();
        for result in join_all(
            records
                .iter()
                .map(|record| self.publisher.producer.send(record)),
        )
        .await
        {
            result.context("while publishing a page of history")?;
        }
        self.published.fetch_add(records.len(), Ordering::Relaxed);
        self.checkpoints.update(channel.id, |position| {
            position.before = Some(cursor.to_string());
            position.read += page.len();
            position.published += records.len();
        })
    }

    async fn end(&self, channel: &Channel, _: (), end: &End) {
        if *end == End::Complete {
            if let Err(err) = self
                .checkpoints
                .update(channel.id, |position| position.done = true)
            {
                tracing::warn!(error = %format!("{err:#}"), "could not save the checkpoint");
            }
        }
    }
}

/// Backfills what `args` names into `publisher`'s topic.
pub async fn run(
    http: &Http,
    publisher: Publisher<'_>,
    checkpoint: PathBuf,
    args: &BackfillArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<Report> {
    run_watched(http, publisher, checkpoint, args, None, shutdown).await
}

/// [`run`], telling `watcher` the progress every few seconds (a moderator's command reply).
pub async fn run_watched(
    http: &Http,
    publisher: Publisher<'_>,
    checkpoint: PathBuf,
    args: &BackfillArgs,
    watcher: Option<walk::Watcher>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Report> {
    let checkpoints = Checkpoints::load(checkpoint)?;
    let mut channels = Vec::new();
    for guild in &args.guild {
        channels.extend(listing::guild(http, *guild, Threads::All).await);
    }
    for channel in &args.channel {
        channels.extend(listing::channel(http, *channel, Threads::All).await?);
    }
    channels.sort_by_key(|channel| channel.id);
    channels.dedup_by_key(|channel| channel.id);
    info!(channels = channels.len(), "backfill starts");
    let sink = Sink {
        publisher,
        checkpoints: &checkpoints,
        before: args.before,
        published: AtomicUsize::new(0),
    };
    let options = walk::Options {
        direction: Direction::Backward,
        concurrency: args.concurrency,
        limit: args.limit,
        label: "backfill",
        report_every: if watcher.is_some() {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(10)
        },
        watcher,
    };
    let walked = walk::run(http, &channels, &options, &sink, shutdown).await;
    let published = channels
        .iter()
        .map(|channel| checkpoints.get(channel.id).published)
        .sum();
    if walked.failed > 0 {
        anyhow::bail!(
            "{} channel(s) could not be published (Kafka); run again to resume",
            walked.failed
        );
    }
    let complete = walked.finished() && !shutdown.is_cancelled();
    if complete {
        checkpoints.forget_done(&channels)?;
    }
    info!(
        channels = channels.len(),
        published,
        this_run = sink.published.load(Ordering::Relaxed),
        refused = walked.refused,
        complete,
        "{}",
        if complete {
            "backfill done"
        } else {
            "backfill interrupted; run it again to resume"
        }
    );
    Ok(Report {
        channels: channels.len(),
        published,
        refused: walked.refused,
        complete,
    })
}
