//! The plain view of Discord's objects: a message as an [`Incoming`], a channel as a
//! [`ChannelInfo`] (and the cache of those the gateway handler keeps). The gateway handler,
//! the catch-up and the backfill all read Discord through these.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serenity::all::{ChannelId, ChannelType, GuildChannel, Message, MessageId, User};

use crate::records::Incoming;

/// What the bot knows of channels: fetched once each, a failed lookup only for a minute (it is
/// asked again after), at most [`ChannelCache::MAX`] channels (then it starts over).
#[derive(Debug, Default)]
pub struct ChannelCache {
    known: HashMap<u64, (ChannelInfo, Option<Instant>)>,
}

impl ChannelCache {
    pub const MAX: usize = 10_000;
    /// How long a failed lookup's stand-in is used before Discord is asked again.
    pub const RETRY_AFTER: Duration = Duration::from_secs(60);

    /// What is known of `channel` at `now` (`None`: ask Discord).
    pub fn get(&mut self, channel: u64, now: Instant) -> Option<ChannelInfo> {
        match self.known.get(&channel) {
            Some((info, None)) => Some(info.clone()),
            Some((info, Some(until))) if now < *until => Some(info.clone()),
            Some(_) => {
                self.known.remove(&channel);
                None
            }
            None => None,
        }
    }

    /// Remembers a lookup: `Some` for good, `None` (failed) as a default for a while.
    pub fn insert(&mut self, channel: u64, fetched: Option<ChannelInfo>, now: Instant) {
        if self.known.len() >= Self::MAX {
            self.known.clear();
        }
        let entry = match fetched {
            Some(info) => (info, None),
            None => (ChannelInfo::default(), Some(now + Self::RETRY_AFTER)),
        };
        self.known.insert(channel, entry);
    }
}

/// What the bot needs to know of a channel (fetched once per channel).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelInfo {
    pub name: Option<String>,
    /// For a public thread, the channel it belongs to. Private threads are left alone: their
    /// messages must stay out of the parent channel's answers.
    pub public_thread_parent: Option<u64>,
    /// For a private thread, the channel it belongs to: only for the community's choices.
    pub private_thread_parent: Option<u64>,
}

impl ChannelInfo {
    /// What a guild channel (or thread) says of itself.
    pub fn of(channel: &GuildChannel) -> Self {
        Self {
            name: Some(channel.name.clone()),
            public_thread_parent: matches!(
                channel.kind,
                ChannelType::PublicThread | ChannelType::NewsThread
            )
            .then_some(channel.parent_id)
            .flatten()
            .map(ChannelId::get),
            private_thread_parent: (channel.kind == ChannelType::PrivateThread)
                .then_some(channel.parent_id)
                .flatten()
                .map(ChannelId::get),
        }
    }
}

/// The author's part of an [`Incoming`]; each conversion below fills in the rest.
pub(crate) fn authored_by(author: &User) -> Incoming {
    Incoming {
        author_id: author.id.get(),
        author_name: author.name.clone(),
        author_discriminator: author.discriminator.map(|d| d.get()),
        author_display_name: author.global_name.clone(),
        ..Incoming::default()
    }
}

/// The message `message` replies to (`message_reference`), if any.
pub fn replies_to(message: &Message) -> Option<u64> {
    message
        .message_reference
        .as_ref()
        .and_then(|reference| reference.message_id)
        .map(MessageId::get)
}

/// The plain view of a serenity message, from the gateway or backfilled history (`guild_id`
/// passed in: REST history lacks it).
pub fn incoming_from(message: &Message, guild_id: Option<u64>, channel: &ChannelInfo) -> Incoming {
    Incoming {
        message_id: message.id.get(),
        channel_id: message.channel_id.get(),
        guild_id,
        channel_name: channel.name.clone(),
        content: message.content.clone(),
        timestamp: message.timestamp.to_rfc3339().unwrap_or_default(),
        reply_to: replies_to(message),
        mentioned_user_ids: message.mentions.iter().map(|user| user.id.get()).collect(),
        author_nickname: message
            .member
            .as_ref()
            .and_then(|member| member.nick.clone()),
        thread_parent: channel.public_thread_parent,
        private_thread_parent: channel.private_thread_parent,
        is_trigger: false,
        ..authored_by(&message.author)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_of(parent: u64) -> ChannelInfo {
        ChannelInfo {
            name: Some("thread".into()),
            public_thread_parent: Some(parent),
            private_thread_parent: None,
        }
    }

    #[test]
    fn a_channel_looked_up_is_known_for_good() {
        let mut cache = ChannelCache::default();
        let now = Instant::now();
        cache.insert(1, Some(thread_of(9)), now);
        assert_eq!(
            cache.get(1, now + Duration::from_secs(3_600)),
            Some(thread_of(9))
        );
    }

    #[test]
    fn a_failed_lookup_is_asked_again_after_a_while() {
        let mut cache = ChannelCache::default();
        let now = Instant::now();
        cache.insert(1, None, now);
        assert_eq!(
            cache.get(1, now),
            Some(ChannelInfo::default()),
            "not asked again at once"
        );
        assert_eq!(
            cache.get(1, now + ChannelCache::RETRY_AFTER),
            None,
            "asked again later"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = ChannelCache::default();
        let now = Instant::now();
        for channel in 0..=ChannelCache::MAX as u64 {
            cache.insert(channel, Some(ChannelInfo::default()), now);
        }
        assert!(cache.known.len() <= ChannelCache::MAX);
    }
}
