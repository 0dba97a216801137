//! `bot backfill --channel ID [--limit N] [--before ID]`: publishes a channel's history to
//! `discord-messages`, newest to oldest, 100 messages a page over REST.
//!
//! Resumable: after each page is acknowledged by Kafka, the oldest id is written to a
//! checkpoint file; a re-run continues from there. Re-publishing a message is harmless (the
//! processor upserts by message id), so an interruption at any point loses nothing.

use std::path::PathBuf;

use anyhow::Context;
use futures::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use rtfm_core::kafka::Producer;
use rtfm_core::MessageEvent;
use serenity::all::{ChannelId, GetMessages, Http, MessageId};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::discord::incoming_from;
use crate::{history, records};

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// Channel whose history to publish.
    #[arg(long)]
    pub channel: u64,
    /// At most this many messages (default: the whole history).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start below this message id (default: the newest message, or the checkpoint).
    #[arg(long)]
    pub before: Option<u64>,
    /// Checkpoint file (default: .rtfm-backfill-<channel>.checkpoint in the working directory).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub published: usize,
    pub complete: bool,
}

fn read_checkpoint(path: &PathBuf) -> Option<(u64, usize)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub async fn run(
    http: &Http,
    producer: &Producer,
    args: &BackfillArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<Report> {
    let channel_id = ChannelId::new(args.channel.max(1));
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!(".rtfm-backfill-{}.checkpoint", args.channel)));
    let channel = http
        .get_channel(channel_id)
        .await
        .with_context(|| format!("while fetching channel {}", args.channel))?;
    let (guild_id, channel_info) = match channel.guild() {
        Some(guild_channel) => (
            Some(guild_channel.guild_id.get()),
            crate::discord::ChannelInfo::of(&guild_channel),
        ),
        None => (None, crate::discord::ChannelInfo::default()),
    };
    let (mut before, mut published) = match (args.before, read_checkpoint(&checkpoint)) {
        (Some(before), _) => (Some(before), 0),
        (None, Some((before, published))) => {
            info!(before, published, "resuming from the checkpoint");
            (Some(before), published)
        }
        (None, None) => (None, 0),
    };
    let progress = match args.limit {
        Some(limit) => ProgressBar::new(limit as u64),
        None => ProgressBar::new_spinner(),
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} messages published ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_position(published as u64);
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut complete = false;
    while published < limit {
        if shutdown.is_cancelled() {
            break;
        }
        let page_size = (limit - published).min(100) as u8;
        let mut request = GetMessages::new().limit(page_size);
        if let Some(before) = before {
            request = request.before(MessageId::new(before));
        }
        let page = history::page(http, channel_id, request, shutdown).await?;
        let Some(oldest) = page.iter().map(|message| message.id.get()).min() else {
            complete = true;
            break;
        };
        let records: Vec<_> = page
            .iter()
            .filter(|message| !message.author.bot)
            .map(|message| {
                records::discord_message(
                    &incoming_from(message, guild_id, &channel_info),
                    MessageEvent::Create,
                )
            })
            .collect();
        for result in join_all(records.iter().map(|record| producer.send(record))).await {
            result.context("while publishing a page of history")?;
        }
        published += page.len();
        before = Some(oldest);
        std::fs::write(&checkpoint, format!("{oldest} {published}\n"))
            .with_context(|| format!("while writing {}", checkpoint.display()))?;
        progress.set_position(published as u64);
        if page.len() < usize::from(page_size) {
            complete = true;
            break;
        }
    }
    if published >= limit {
        complete = true;
    }
    progress.finish_with_message(if complete {
        "done"
    } else {
        "interrupted; run again to resume"
    });
    if complete {
        let _ = std::fs::remove_file(&checkpoint);
    }
    Ok(Report {
        published,
        complete,
    })
}
