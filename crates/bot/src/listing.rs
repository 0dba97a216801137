//! Which channels of a guild there are to read: its text channels, its threads (active, and
//! for a backfill the archived ones, public and private) and a forum's posts.
//!
//! Discord lists a guild's channels without their threads, and its *active* threads in one
//! call; archived threads only per parent channel, paged by archive time (`before` is an
//! ISO 8601 timestamp there, which serenity's helpers send as a number, so the requests are
//! built here). Private archived threads need Manage Threads: without it, the ones the bot
//! joined are listed instead. A listing Discord refuses is logged and skipped.

use serenity::all::{ChannelId, ChannelType, GuildChannel, GuildId, Http, MessageId};
use serenity::http::{LightMethod, Request, Route};
use serenity::model::channel::ThreadsData;
use tracing::{debug, warn};

use crate::view::ChannelInfo;

/// One channel (or thread) to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: u64,
    pub guild_id: Option<u64>,
    pub info: ChannelInfo,
    /// Discord's newest message of the channel, when the listing says.
    pub last_message_id: Option<u64>,
}

impl Channel {
    pub fn of(channel: &GuildChannel) -> Self {
        Self {
            id: channel.id.get(),
            guild_id: Some(channel.guild_id.get()),
            last_message_id: channel.last_message_id.map(MessageId::get),
            info: ChannelInfo::of(channel),
        }
    }

    /// A channel known only by its id (a mark left by an earlier run).
    pub fn bare(id: u64) -> Self {
        Self {
            id,
            guild_id: None,
            info: ChannelInfo::default(),
            last_message_id: None,
        }
    }
}

/// Which threads a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Active ones only: what can have new messages (a catch-up).
    Active,
    /// Archived ones as well (a backfill).
    All,
}

/// Channels whose own messages the bot reads.
fn has_messages(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::Text | ChannelType::News | ChannelType::Voice
    )
}

/// Channels that hold threads.
fn has_threads(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::Text | ChannelType::News | ChannelType::Forum
    ) || u8::from(kind) == 16 // media channels, which serenity 0.12 does not name
}

/// The channels of `guild` to read, and their threads.
pub async fn guild(http: &Http, guild: u64, threads: Threads) -> Vec<Channel> {
    let guild_id = GuildId::new(guild.max(1));
    let channels = match http.get_channels(guild_id).await {
        Ok(channels) => channels,
        Err(err) => {
            warn!(guild_id = guild, error = %err, "could not list the guild's channels");
            Vec::new()
        }
    };
    let mut found: Vec<Channel> = channels
        .iter()
        .filter(|channel| has_messages(channel.kind))
        .map(Channel::of)
        .collect();
    found.extend(active_threads(http, guild, None).await);
    if threads == Threads::All {
        for parent in channels.iter().filter(|channel| has_threads(channel.kind)) {
            found.extend(archived_threads(http, parent.id.get()).await);
        }
    }
    found.sort_by_key(|channel| channel.id);
    found.dedup_by_key(|channel| channel.id);
    found
}

/// One channel by id, and (with `Threads::All`, for a channel that holds threads) its threads.
pub async fn channel(http: &Http, id: u64, threads: Threads) -> anyhow::Result<Vec<Channel>> {
    let fetched = http
        .get_channel(ChannelId::new(id.max(1)))
        .await
        .map_err(|err| anyhow::anyhow!("while fetching channel {id}: {err}"))?;
    let Some(channel) = fetched.guild() else {
        return Ok(vec![Channel::bare(id)]); // a DM
    };
    let mut found = Vec::new();
    if has_messages(channel.kind) || channel.thread_metadata.is_some() {
        found.push(Channel::of(&channel));
    }
    if threads == Threads::All && has_threads(channel.kind) {
        found.extend(active_threads(http, channel.guild_id.get(), Some(id)).await);
        found.extend(archived_threads(http, id).await);
    }
    Ok(found)
}

/// The guild's active threads (of one parent, or all).
async fn active_threads(http: &Http, guild: u64, parent: Option<u64>) -> Vec<Channel> {
    match http
        .get_guild_active_threads(GuildId::new(guild.max(1)))
        .await
    {
        Ok(threads) => threads
            .threads
            .iter()
            .filter(|thread| parent.is_none() || thread.parent_id.map(ChannelId::get) == parent)
            .map(Channel::of)
            .collect(),
        Err(err) => {
            warn!(guild_id = guild, error = %err, "could not list the guild's active threads");
            Vec::new()
        }
    }
}

/// Which archived threads of a channel: Discord's three listings.
#[derive(Debug, Clone, Copy)]
enum Archived {
    Public,
    Private,
    /// The private ones the bot joined (when it may not list all private ones).
    JoinedPrivate,
}

/// Every archived thread of `parent` (public, then private), page by page.
async fn archived_threads(http: &Http, parent: u64) -> Vec<Channel> {
    let mut found = archived(http, parent, Archived::Public).await;
    match archived_pages(http, parent, Archived::Private).await {
        Ok(private) => found.extend(private),
        Err(err) => {
            debug!(channel_id = parent, error = %err, "private archived threads not listed; the joined ones instead");
            found.extend(archived(http, parent, Archived::JoinedPrivate).await);
        }
    }
    found
}

async fn archived(http: &Http, parent: u64, which: Archived) -> Vec<Channel> {
    archived_pages(http, parent, which)
        .await
        .unwrap_or_else(|err| {
            warn!(channel_id = parent, error = %err, listing = ?which, "could not list archived threads");
            Vec::new()
        })
}

async fn archived_pages(
    http: &Http,
    parent: u64,
    which: Archived,
) -> Result<Vec<Channel>, serenity::Error> {
    let channel_id = ChannelId::new(parent.max(1));
    let mut found = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let route = match which {
            Archived::Public => Route::ChannelArchivedPublicThreads { channel_id },
            Archived::Private => Route::ChannelArchivedPrivateThreads { channel_id },
            Archived::JoinedPrivate => Route::ChannelJoinedPrivateThreads { channel_id },
        };
        let mut params = vec![("limit", "100".to_string())];
        params.extend(before.clone().map(|before| ("before", before)));
        let page: ThreadsData = http
            .fire(Request::new(route, LightMethod::Get).params(Some(params)))
            .await?;
        found.extend(page.threads.iter().map(Channel::of));
        // Public and private listings page by archive time; the joined one by thread id.
        let next = match which {
            Archived::JoinedPrivate => page
                .threads
                .iter()
                .map(|thread| thread.id.get())
                .min()
                .map(|id| id.to_string()),
            _ => page
                .threads
                .iter()
                .filter_map(|thread| {
                    thread
                        .thread_metadata
                        .and_then(|meta| meta.archive_timestamp)
                })
                .min()
                .map(|at| at.to_rfc3339().unwrap_or_default()),
        };
        match next {
            Some(next) if page.has_more && before.as_ref() != Some(&next) => before = Some(next),
            _ => return Ok(found),
        }
    }
}
