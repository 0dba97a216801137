//! The index format: how a Discord message is stored in the vector store and read back, in
//! one place, and the filters that select a conversation's messages in it.
//!
//! Stored metadata is flat scalars (Chroma's rule), so lists (mentioned users) are stored as
//! `,id,id,` strings. Everything that writes metadata ([`metadata_for`]) and everything that
//! reads it ([`IndexedMessage::from_stored`]) is here, under the keys of [`Field`]. Messages
//! indexed by older versions lack the newer keys and read back with those fields empty.

use rtfm_core::ids::{ChannelId, GuildId, MessageId, UserId};
use rtfm_core::DiscordMessage;
use serde_json::{json, Map, Value};

use crate::store::{Field, Filter, StoredMessage};

/// Metadata keys.
mod key {
    use crate::store::Field;

    pub const GUILD: &str = Field::Guild.key();
    pub const IS_DM: &str = Field::IsDm.key();
    pub const CHANNEL: &str = Field::Channel.key();
    pub const CHANNEL_NAME: &str = Field::ChannelName.key();
    pub const USER: &str = Field::Author.key();
    pub const USERNAME: &str = Field::Username.key();
    pub const DISPLAY_NAME: &str = Field::DisplayName.key();
    pub const NICKNAME: &str = Field::Nickname.key();
    pub const TIMESTAMP: &str = Field::Timestamp.key();
    pub const EPOCH: &str = Field::Epoch.key();
    pub const BUCKET: &str = Field::TimeBucket.key();
    pub const MESSAGE: &str = Field::Message.key();
    pub const REPLY_TO: &str = Field::ReplyTo.key();
    pub const MENTIONS: &str = Field::Mentions.key();
    pub const THREAD_PARENT: &str = Field::ThreadParent.key();
    pub const THREAD_STARTER: &str = Field::ThreadStarter.key();
    pub const PRIVATE_THREAD_PARENT: &str = Field::PrivateThreadParent.key();
}

/// Seconds per `time_bucket`: neighbourhoods are fetched with an integer `$in` on buckets
/// (an inverted-index lookup in Chroma) instead of a float range over `timestamp_epoch`.
const TIME_BUCKET_SECS: f64 = 60.0;

pub fn time_bucket(epoch: f64) -> i64 {
    (epoch / TIME_BUCKET_SECS).floor() as i64
}

/// One message as the index knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexedMessage {
    pub id: MessageId,
    pub content: String,
    pub guild_id: Option<GuildId>,
    /// Stored as a DM (`is_dm`).
    pub is_dm: bool,
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub nickname: Option<String>,
    pub timestamp: String,
    /// Seconds since the epoch (0 when unknown).
    pub epoch: f64,
    pub reply_to: Option<MessageId>,
    /// Users it `@mentions`.
    pub mentions: Vec<UserId>,
    pub thread_parent: Option<ChannelId>,
    pub thread_starter: Option<MessageId>,
    /// A private thread's parent (for the community's choices only).
    pub private_thread_parent: Option<ChannelId>,
    /// Cosine similarity to the question being answered, when retrieval computed it.
    pub relevance: Option<f32>,
}

impl IndexedMessage {
    pub fn from_stored(stored: &StoredMessage) -> Self {
        let text = |key: &str| {
            stored
                .metadata
                .get(key)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        // Ids were written from typed records; one that does not read back (a store edited by
        // hand) reads as absent, or as 0 where one is required.
        fn id<T: std::str::FromStr>(text: Option<String>) -> Option<T> {
            text.and_then(|text| text.parse().ok())
        }
        Self {
            id: stored.id,
            content: stored.document.clone(),
            guild_id: id(text(key::GUILD)),
            is_dm: stored
                .metadata
                .get(key::IS_DM)
                .and_then(Value::as_bool)
                .unwrap_or(false),
            channel_id: id(text(key::CHANNEL)).unwrap_or_default(),
            user_id: id(text(key::USER)).unwrap_or_default(),
            username: text(key::USERNAME).unwrap_or_else(|| "someone".to_string()),
            display_name: text(key::DISPLAY_NAME),
            nickname: text(key::NICKNAME),
            timestamp: text(key::TIMESTAMP).unwrap_or_default(),
            epoch: stored
                .metadata
                .get(key::EPOCH)
                .and_then(Value::as_f64)
                .unwrap_or_default(),
            reply_to: id(text(key::REPLY_TO)),
            mentions: text(key::MENTIONS)
                .map(|list| list.split(',').filter_map(|id| id.parse().ok()).collect())
                .unwrap_or_default(),
            thread_parent: id(text(key::THREAD_PARENT)),
            thread_starter: id(text(key::THREAD_STARTER)),
            private_thread_parent: id(text(key::PRIVATE_THREAD_PARENT)),
            relevance: None,
        }
    }

    /// The names people may type to address the author: username (without a legacy
    /// `#1234`), display name, server nickname.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.username.split('#').next().unwrap_or(&self.username)];
        names.extend(self.display_name.as_deref());
        names.extend(self.nickname.as_deref());
        names
    }
}

/// Chroma metadata of one message. Flat scalars only (Chroma's rule).
pub fn metadata_for(message: &DiscordMessage) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(guild_id) = &message.guild_id {
        metadata.insert(key::GUILD.into(), json!(guild_id));
    }
    metadata.insert(key::IS_DM.into(), json!(message.guild_id.is_none()));
    metadata.insert(key::CHANNEL.into(), json!(message.channel_id));
    metadata.insert(key::USER.into(), json!(message.user_id));
    metadata.insert(key::USERNAME.into(), json!(message.username));
    if let Some(name) = &message.author_display_name {
        metadata.insert(key::DISPLAY_NAME.into(), json!(name));
    }
    if let Some(name) = &message.author_nickname {
        metadata.insert(key::NICKNAME.into(), json!(name));
    }
    metadata.insert(key::TIMESTAMP.into(), json!(message.timestamp));
    let epoch = message
        .timestamp_utc()
        .map(|time| time.timestamp_millis() as f64 / 1000.0)
        .unwrap_or_default();
    metadata.insert(key::EPOCH.into(), json!(epoch));
    metadata.insert(key::BUCKET.into(), json!(time_bucket(epoch)));
    metadata.insert(key::MESSAGE.into(), json!(message.message_id));
    if let Some(name) = message.channel_name() {
        metadata.insert(key::CHANNEL_NAME.into(), json!(name));
    }
    if let Some(reply_to) = &message.reply_to_message_id {
        metadata.insert(key::REPLY_TO.into(), json!(reply_to));
    }
    let mentions = message.mentioned_users();
    if !mentions.is_empty() {
        let mentions: Vec<String> = mentions.iter().map(UserId::to_string).collect();
        metadata.insert(
            key::MENTIONS.into(),
            json!(format!(",{},", mentions.join(","))),
        );
    }
    if let Some(parent) = &message.thread_parent_channel_id {
        metadata.insert(key::THREAD_PARENT.into(), json!(parent));
    }
    if let Some(starter) = &message.thread_starter_message_id {
        metadata.insert(key::THREAD_STARTER.into(), json!(starter));
    }
    if let Some(parent) = &message.private_thread_parent_channel_id {
        metadata.insert(key::PRIVATE_THREAD_PARENT.into(), json!(parent));
    }
    metadata
}

/// Messages of `channel_id` in the time buckets `from..=to`.
pub fn window_filter(channel_id: ChannelId, from_bucket: i64, to_bucket: i64) -> Filter {
    Filter::all_of([
        Filter::any_of(Field::Channel, [channel_id]),
        Filter::any_of(Field::TimeBucket, from_bucket..=to_bucket),
    ])
}

/// Messages that reply to one of `ids`, are one of `ids`, or belong to a thread started from
/// one of `ids`: the conversation links, followed without a time window.
pub fn linked_filter(ids: &[MessageId]) -> Filter {
    Filter::either([
        Filter::In(Field::ReplyTo, ids.iter().map(Into::into).collect()),
        Filter::In(Field::Message, ids.iter().map(Into::into).collect()),
        Filter::In(Field::ThreadStarter, ids.iter().map(Into::into).collect()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_through_the_index_format() {
        let message = DiscordMessage {
            message_id: 10.into(),
            content: "<@42> try <@!43>, not <@&7> or <#8>".into(),
            username: "ann#0001".into(),
            user_id: 5.into(),
            channel_id: 20.into(),
            timestamp: "2025-11-02T12:34:56Z".into(),
            guild_id: Some(1.into()),
            reply_to_message_id: Some(9.into()),
            author_display_name: Some("Ann".into()),
            author_nickname: Some("annie".into()),
            thread_parent_channel_id: Some(2.into()),
            thread_starter_message_id: Some(20.into()),
            ..Default::default()
        };
        let stored = StoredMessage {
            id: 10.into(),
            document: message.content.clone(),
            metadata: metadata_for(&message),
        };
        let indexed = IndexedMessage::from_stored(&stored);
        assert_eq!(
            indexed.mentions,
            vec![UserId::new(42), UserId::new(43)],
            "users only, by id"
        );
        assert_eq!(indexed.reply_to, Some(MessageId::new(9)));
        assert_eq!(indexed.names(), vec!["ann", "Ann", "annie"]);
        assert_eq!(indexed.thread_starter, Some(MessageId::new(20)));
        assert_eq!(indexed.guild_id, Some(GuildId::new(1)));
        assert!((indexed.epoch - 1_762_086_896.0).abs() < 1.0);
    }

    #[test]
    fn is_dm_round_trips_through_the_index_format() {
        for guild in [None, Some(GuildId::new(1))] {
            let message = DiscordMessage {
                message_id: 10.into(),
                channel_id: 20.into(),
                guild_id: guild,
                ..Default::default()
            };
            let stored = StoredMessage {
                id: 10.into(),
                document: String::new(),
                metadata: metadata_for(&message),
            };
            assert_eq!(IndexedMessage::from_stored(&stored).is_dm, guild.is_none());
        }
    }
}
