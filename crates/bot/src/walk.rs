//! The one engine that reads Discord's history: the downtime catch-up ([`crate::catchup`],
//! forward from each channel's high-water mark) and `bot backfill` ([`crate::backfill`],
//! backward from the newest message or its durable checkpoint) both run it.
//!
//! It walks many channels at once (each channel's history is a rate-limit bucket of its own;
//! a few at a time stay well within the global limit), 100 messages a request, and hands each
//! page, in walk order, to a [`Sink`] that publishes it and makes the progress durable — the
//! walk moves on only once the sink returned. It logs progress with an estimate of the total
//! and an ETA: Discord does not count a channel's messages, but ids are timestamps, so the
//! share of a channel's lifetime already read is known and the rest is extrapolated.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serenity::all::{ChannelId, GetMessages, Http, Message, MessageId};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::listing::Channel;

/// Which way a walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first, after the cursor (a catch-up).
    Forward,
    /// Newest first, before the cursor (a backfill: the recent history is the useful part).
    Backward,
}

/// Where a channel's walk starts, and what the sink keeps while it runs.
#[derive(Debug)]
pub struct Begin<S> {
    /// The last message already handled (`None`: the channel's newest, or its start).
    pub cursor: Option<u64>,
    /// Messages read before (by an interrupted run).
    pub read: usize,
    pub state: S,
}

/// How a channel's walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Its whole range was read (or its limit reached).
    Complete,
    /// Shut down first; the durable cursor says where to go on.
    Interrupted,
    /// Discord refused to show it (no access, gone).
    Refused(String),
    /// The sink could not take a page (Kafka).
    Failed(String),
}

/// What receives the pages of a walk.
pub trait Sink: Sync {
    /// Per channel, while it is walked.
    type Channel: Send;
    /// Starts `channel`, or skips it (`None`: nothing to read there).
    fn begin(&self, channel: &Channel) -> Option<Begin<Self::Channel>>;
    /// Takes one page, in walk order; `cursor` is the page's last message. When this returns
    /// `Ok`, the page must be safe (published, and the cursor durable if the sink keeps one).
    fn page(
        &self,
        channel: &Channel,
        state: &mut Self::Channel,
        page: &[Message],
        cursor: u64,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Ends `channel`'s walk.
    fn end(
        &self,
        channel: &Channel,
        state: Self::Channel,
        end: &End,
    ) -> impl Future<Output = ()> + Send;
}

/// How to walk.
#[derive(Debug, Clone)]
pub struct Options {
    pub direction: Direction,
    /// Channels read at once.
    pub concurrency: usize,
    /// At most this many messages per channel.
    pub limit: Option<usize>,
    /// What the progress lines call the walk ("backfill", "catch-up").
    pub label: &'static str,
    /// How often progress is logged (and told to the watcher).
    pub report_every: Duration,
    /// Told the progress at each report and at the end (an admin's command reply).
    pub watcher: Option<Watcher>,
}

/// Receives `(read, about)`: messages read so far and about how many there are.
#[derive(Clone)]
pub struct Watcher(pub std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// What a walk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub channels: usize,
    pub skipped: usize,
    pub complete: usize,
    pub refused: usize,
    pub failed: usize,
    pub interrupted: usize,
    pub read: usize,
}

impl Report {
    /// Every channel read to its end, skipped or refused.
    pub fn finished(&self) -> bool {
        self.failed == 0 && self.interrupted == 0
    }
}

/// Walks `channels` into `sink`.
pub async fn run<S: Sink>(
    http: &Http,
    channels: &[Channel],
    options: &Options,
    sink: &S,
    shutdown: &CancellationToken,
) -> Report {
    let progress = Progress::new(channels, options.direction);
    let mut waiting = channels.iter().enumerate();
    let mut walks = futures::stream::FuturesUnordered::new();
    for (index, channel) in waiting.by_ref().take(options.concurrency.max(1)) {
        walks.push(walk_channel(
            http, index, channel, options, sink, &progress, shutdown,
        ));
    }
    let mut report = Report {
        channels: channels.len(),
        ..Report::default()
    };
    let mut ticker = tokio::time::interval(options.report_every);
    ticker.tick().await;
    loop {
        tokio::select! {
            next = walks.next() => {
                match next {
                    None => break,
                    Some(None) => report.skipped += 1,
                    Some(Some(End::Complete)) => report.complete += 1,
                    Some(Some(End::Interrupted)) => report.interrupted += 1,
                    Some(Some(End::Refused(_))) => report.refused += 1,
                    Some(Some(End::Failed(_))) => report.failed += 1,
                }
                if let Some((index, channel)) = waiting.next() {
                    walks.push(walk_channel(http, index, channel, options, sink, &progress, shutdown));
                }
            }
            _ = ticker.tick() => progress.log(options.label, &report, options.watcher.as_ref()),
        }
    }
    progress.log(options.label, &report, options.watcher.as_ref());
    report.read = progress.read();
    report
}

/// One channel, page by page; `None` if the sink skipped it.
async fn walk_channel<S: Sink>(
    http: &Http,
    index: usize,
    channel: &Channel,
    options: &Options,
    sink: &S,
    progress: &Progress,
    shutdown: &CancellationToken,
) -> Option<End> {
    let begin = sink.begin(channel)?;
    let mut state = begin.state;
    let mut cursor = begin.cursor;
    let mut read = begin.read;
    progress.start(index, cursor, read);
    let channel_id = ChannelId::new(channel.id.max(1));
    let end = loop {
        let size = options
            .limit
            .map_or(100, |limit| limit.saturating_sub(read).min(100));
        if size == 0 {
            break End::Complete;
        }
        let request = GetMessages::new().limit(size as u8);
        let request = match (options.direction, cursor) {
            (Direction::Forward, cursor) => {
                request.after(MessageId::new(cursor.unwrap_or(1).max(1)))
            }
            (Direction::Backward, Some(before)) => request.before(MessageId::new(before.max(1))),
            (Direction::Backward, None) => request,
        };
        let mut page = match crate::history::page(http, channel_id, request, shutdown).await {
            Ok(page) => page,
            Err(_) if shutdown.is_cancelled() => break End::Interrupted,
            Err(err) => break End::Refused(format!("{err:#}")),
        };
        match options.direction {
            Direction::Forward => page.sort_by_key(|message| message.id),
            Direction::Backward => page.sort_by_key(|message| std::cmp::Reverse(message.id)),
        }
        let Some(last) = page.last().map(|message| message.id.get()) else {
            break End::Complete;
        };
        if let Err(err) = sink.page(channel, &mut state, &page, last).await {
            break if shutdown.is_cancelled() {
                End::Interrupted
            } else {
                End::Failed(format!("{err:#}"))
            };
        }
        cursor = Some(last);
        read += page.len();
        progress.advance(
            index,
            page.first().map(|message| message.id.get()),
            last,
            read,
        );
        if page.len() < size {
            break End::Complete;
        }
        if shutdown.is_cancelled() {
            break End::Interrupted;
        }
    };
    match &end {
        End::Refused(reason) => {
            info!(channel_id = channel.id, reason = %reason, "Discord refused the channel's history; skipped")
        }
        End::Failed(reason) => {
            info!(channel_id = channel.id, reason = %reason, "a page of the channel's history could not be published")
        }
        End::Complete => debug!(channel_id = channel.id, read, "channel read"),
        End::Interrupted => debug!(channel_id = channel.id, read, "channel interrupted"),
    }
    progress.finish(index, &end);
    sink.end(channel, state, &end).await;
    Some(end)
}

/// How far a walk is, and how far it has still to go.
struct Progress {
    started: Instant,
    direction: Direction,
    channels: Mutex<Vec<Span>>,
}

/// One channel's range of ids and how much of it was read.
#[derive(Debug, Clone, Default)]
struct Span {
    /// The end the walk starts from, and the end it walks to (ids are timestamps).
    from: Option<u64>,
    to: u64,
    cursor: Option<u64>,
    read: usize,
    /// Read in this run (for the rate).
    read_now: usize,
    done: bool,
}

impl Span {
    /// The share of the channel's range read.
    fn fraction(&self) -> Option<f64> {
        if self.done {
            return Some(1.0);
        }
        let (from, cursor) = (self.from?, self.cursor?);
        let whole = from.abs_diff(self.to) as f64;
        (whole > 0.0).then(|| (from.abs_diff(cursor) as f64 / whole).clamp(0.0, 1.0))
    }
}

impl Progress {
    fn new(channels: &[Channel], direction: Direction) -> Self {
        let spans = channels
            .iter()
            .map(|channel| match direction {
                // Back from the newest message to the channel's creation (its id).
                Direction::Backward => Span {
                    from: channel.last_message_id,
                    to: channel.id,
                    ..Span::default()
                },
                // On from the mark to the newest message.
                Direction::Forward => Span {
                    to: channel.last_message_id.unwrap_or_default(),
                    ..Span::default()
                },
            })
            .collect();
        Self {
            started: Instant::now(),
            direction,
            channels: Mutex::new(spans),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Span>) -> T) -> T {
        f(&mut self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn start(&self, index: usize, cursor: Option<u64>, read: usize) {
        let direction = self.direction;
        self.with(|spans| {
            let span = &mut spans[index];
            span.cursor = cursor;
            span.read = read;
            if direction == Direction::Forward {
                span.from = cursor;
            }
        });
    }

    fn advance(&self, index: usize, first: Option<u64>, cursor: u64, read: usize) {
        self.with(|spans| {
            let span = &mut spans[index];
            span.from = span.from.or(first);
            span.read_now += read - span.read;
            span.read = read;
            span.cursor = Some(cursor);
        });
    }

    fn finish(&self, index: usize, end: &End) {
        self.with(|spans| spans[index].done = *end == End::Complete);
    }

    fn read(&self) -> usize {
        self.with(|spans| spans.iter().map(|span| span.read_now).sum())
    }

    /// About how many messages the channels hold: each started channel's reading
    /// extrapolated over its range; the others at the started ones' density.
    fn estimate(spans: &[Span]) -> usize {
        let (mut total, mut read, mut range) = (0.0, 0.0, 0.0);
        for span in spans {
            if let Some(fraction) = span.fraction().filter(|fraction| *fraction > 0.0) {
                total += span.read as f64 / fraction;
                read += span.read as f64;
                range += span.from.map_or(0, |from| from.abs_diff(span.to)) as f64 * fraction;
            }
        }
        let density = if range > 0.0 { read / range } else { 0.0 };
        for span in spans
            .iter()
            .filter(|span| span.fraction().is_none_or(|f| f == 0.0))
        {
            total += density * span.from.unwrap_or(span.to).abs_diff(span.to) as f64;
        }
        (total.round() as usize).max(spans.iter().map(|span| span.read).sum())
    }

    fn log(&self, label: &str, report: &Report, watcher: Option<&Watcher>) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let (read_now, read, estimate) = self.with(|spans| {
            (
                spans.iter().map(|span| span.read_now).sum::<usize>(),
                spans.iter().map(|span| span.read).sum::<usize>(),
                Self::estimate(spans),
            )
        });
        if let Some(watcher) = watcher {
            (watcher.0)(read, estimate);
        }
        let per_minute = read_now as f64 / elapsed * 60.0;
        let eta_secs = (per_minute > 0.0)
            .then(|| (estimate.saturating_sub(read) as f64 / per_minute * 60.0).round() as u64);
        info!(
            walk = label,
            read,
            about = estimate,
            channels_done = report.complete + report.skipped + report.refused,
            channels = report.channels,
            per_minute = per_minute.round() as u64,
            eta_secs,
            "{label}: read {read} of about {estimate} messages"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(from: u64, to: u64, cursor: u64, read: usize) -> Span {
        Span {
            from: Some(from),
            to,
            cursor: Some(cursor),
            read,
            ..Span::default()
        }
    }

    #[test]
    fn a_channel_read_halfway_is_estimated_at_twice_what_was_read() {
        assert_eq!(Progress::estimate(&[span(1000, 0, 500, 300)]), 600);
    }

    #[test]
    fn channels_not_started_are_estimated_at_the_density_of_the_others() {
        let not_started = Span {
            from: Some(2000),
            to: 1000,
            ..Span::default()
        };
        // 300 messages over 500 ids read: 0.6 a unit; 1000 units not started → 600 more.
        assert_eq!(
            Progress::estimate(&[span(1000, 0, 500, 300), not_started]),
            1200
        );
    }

    #[test]
    fn the_estimate_is_never_below_what_was_read() {
        let done = Span {
            read: 50,
            done: true,
            ..Span::default()
        };
        assert_eq!(Progress::estimate(&[done, Span::default()]), 50);
    }
}
