//! The index format: how a Discord message is stored in Chroma and read back, in one place.
//!
//! Chroma metadata is flat scalars, so lists (mentioned users) are stored as `,id,id,`
//! strings. Everything that writes metadata ([`metadata_for`]) and everything that reads it
//! ([`IndexedMessage::from_stored`]) is here; nothing else touches the keys. Messages indexed
//! by older versions lack the newer keys and read back with those fields empty.

use rtfm_core::{BotQuery, DiscordMessage};
use serde_json::{json, Map, Value};

use crate::retrieval::Scope;
use crate::store::StoredMessage;

/// Metadata keys.
mod key {
    pub const GUILD: &str = "guild_id";
    pub const IS_DM: &str = "is_dm";
    pub const CHANNEL: &str = "channel_id";
    pub const CHANNEL_NAME: &str = "channel_name";
    pub const USER: &str = "user_id";
    pub const USERNAME: &str = "username";
    pub const DISPLAY_NAME: &str = "display_name";
    pub const NICKNAME: &str = "nickname";
    pub const TIMESTAMP: &str = "timestamp";
    pub const EPOCH: &str = "timestamp_epoch";
    pub const BUCKET: &str = "time_bucket";
    pub const MESSAGE: &str = "message_id";
    pub const REPLY_TO: &str = "reply_to_message_id";
    pub const MENTIONS: &str = "mentions";
    pub const THREAD_PARENT: &str = "thread_parent_channel_id";
    pub const THREAD_STARTER: &str = "thread_starter_message_id";
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
    pub id: String,
    pub content: String,
    pub guild_id: Option<String>,
    /// Stored as a DM (`is_dm`).
    pub is_dm: bool,
    pub channel_id: String,
    pub user_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub nickname: Option<String>,
    pub timestamp: String,
    /// Seconds since the epoch (0 when unknown).
    pub epoch: f64,
    pub reply_to: Option<String>,
    /// Users it `@mentions`.
    pub mentions: Vec<String>,
    pub thread_parent: Option<String>,
    pub thread_starter: Option<String>,
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
        Self {
            id: stored.id.clone(),
            content: stored.document.clone(),
            guild_id: text(key::GUILD),
            is_dm: stored
                .metadata
                .get(key::IS_DM)
                .and_then(Value::as_bool)
                .unwrap_or(false),
            channel_id: text(key::CHANNEL).unwrap_or_default(),
            user_id: text(key::USER).unwrap_or_default(),
            username: text(key::USERNAME).unwrap_or_else(|| "someone".to_string()),
            display_name: text(key::DISPLAY_NAME),
            nickname: text(key::NICKNAME),
            timestamp: text(key::TIMESTAMP).unwrap_or_default(),
            epoch: stored
                .metadata
                .get(key::EPOCH)
                .and_then(Value::as_f64)
                .unwrap_or_default(),
            reply_to: text(key::REPLY_TO),
            mentions: text(key::MENTIONS)
                .map(|list| {
                    list.split(',')
                        .filter(|id| !id.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            thread_parent: text(key::THREAD_PARENT),
            thread_starter: text(key::THREAD_STARTER),
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
    metadata
}

/// What a question may see, as the asker may see it.
///
/// - guild + channel scope: that guild **and** (that channel, or a public thread of it);
/// - guild + guild scope: that guild **and** (that channel or one of the query's
///   `visible_channel_ids` — the channels the bot found readable by everyone who can read the
///   question's channel — or a public thread of one of them). A query without the field (an
///   older bot) gets channel scope: nothing is widened on a guess;
/// - no guild (a DM): that channel **and** `is_dm` — so a query that omits its guild cannot
///   reach a guild channel by naming its id.
///
/// Chroma is asked with the channel part only ([`Reach::filter`]) and every message it returns
/// is checked against the whole rule ([`Reach::admits`]). What a `where` costs Chroma grows
/// with the records each operand matches, so `guild_id == g` costs time in proportion to the
/// whole guild (`scripts/probe_chroma_where.py`, Chroma 1.5.9: a 1 000-message channel's
/// search takes 7.6 ms in a 10 000-message guild with the channel clause, 14.3 with the guild
/// clause as well; 18.0 and 39.5 in a 30 000-message guild) while it can only remove
/// messages whose stored guild contradicts their channel's: Discord's channel ids are unique
/// across guilds. Checking it on the returned messages instead keeps the rule exact at a cost
/// that does not grow with the guild.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    /// `None`: a DM.
    guild: Option<String>,
    channels: Vec<String>,
}

impl Reach {
    pub fn of(query: &BotQuery, scope: Scope) -> Self {
        let mut channels = vec![query.channel_id.clone()];
        if query.guild_id.is_some() && scope == Scope::Guild {
            for visible in query.visible_channel_ids.iter().flatten() {
                if !channels.contains(visible) {
                    channels.push(visible.clone());
                }
            }
        }
        Self {
            guild: query.guild_id.clone(),
            channels,
        }
    }

    /// The `where` filter Chroma applies: the channels (and, in a guild, their public threads).
    pub fn filter(&self) -> Value {
        let channel = |key: &str| match self.channels.as_slice() {
            [one] => json!({ key: {"$eq": one} }),
            many => json!({ key: {"$in": many} }),
        };
        if self.guild.is_none() {
            return channel(key::CHANNEL);
        }
        json!({"$or": [channel(key::CHANNEL), channel(key::THREAD_PARENT)]})
    }

    /// Whether `message` is inside the reach: the whole rule, guild or DM included.
    pub fn admits(&self, message: &IndexedMessage) -> bool {
        let listed = |channel: Option<&str>| {
            channel.is_some_and(|channel| self.channels.iter().any(|listed| listed == channel))
        };
        match &self.guild {
            None => {
                message.is_dm && message.guild_id.is_none() && listed(Some(&message.channel_id))
            }
            Some(guild) => {
                message.guild_id.as_ref() == Some(guild)
                    && (listed(Some(&message.channel_id))
                        || listed(message.thread_parent.as_deref()))
            }
        }
    }
}

/// Messages of `channel_id` in the time buckets `from..=to`.
pub fn window_filter(channel_id: &str, from_bucket: i64, to_bucket: i64) -> Value {
    let buckets: Vec<i64> = (from_bucket..=to_bucket).collect();
    json!({"$and": [
        {key::CHANNEL: {"$eq": channel_id}},
        {key::BUCKET: {"$in": buckets}},
    ]})
}

/// Messages that reply to one of `ids`, are one of `ids`, or belong to a thread started from
/// one of `ids`: the conversation links, followed without a time window.
pub fn linked_filter(ids: &[String]) -> Value {
    json!({"$or": [
        {key::REPLY_TO: {"$in": ids}},
        {key::MESSAGE: {"$in": ids}},
        {key::THREAD_STARTER: {"$in": ids}},
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_through_the_index_format() {
        let message = DiscordMessage {
            message_id: "10".into(),
            content: "<@42> try <@!43>, not <@&7> or <#8>".into(),
            username: "ann#0001".into(),
            user_id: "5".into(),
            channel_id: "20".into(),
            timestamp: "2025-11-02T12:34:56Z".into(),
            guild_id: Some("1".into()),
            reply_to_message_id: Some("9".into()),
            author_display_name: Some("Ann".into()),
            author_nickname: Some("annie".into()),
            thread_parent_channel_id: Some("2".into()),
            thread_starter_message_id: Some("20".into()),
            ..Default::default()
        };
        let stored = StoredMessage {
            id: "10".into(),
            document: message.content.clone(),
            metadata: metadata_for(&message),
        };
        let indexed = IndexedMessage::from_stored(&stored);
        assert_eq!(indexed.mentions, vec!["42", "43"], "users only, by id");
        assert_eq!(indexed.reply_to.as_deref(), Some("9"));
        assert_eq!(indexed.names(), vec!["ann", "Ann", "annie"]);
        assert_eq!(indexed.thread_starter.as_deref(), Some("20"));
        assert_eq!(indexed.guild_id.as_deref(), Some("1"));
        assert!((indexed.epoch - 1_762_086_896.0).abs() < 1.0);
    }

    fn asked(guild: Option<&str>, channel: &str, visible: Option<&[&str]>) -> BotQuery {
        BotQuery {
            guild_id: guild.map(str::to_string),
            channel_id: channel.into(),
            visible_channel_ids: visible
                .map(|channels| channels.iter().map(|id| id.to_string()).collect()),
            ..Default::default()
        }
    }

    /// A stored message of `guild` (None: a DM) in `channel`, optionally in a thread of
    /// `parent`.
    fn stored_in(guild: Option<&str>, channel: &str, parent: Option<&str>) -> IndexedMessage {
        IndexedMessage {
            id: "100".into(),
            guild_id: guild.map(str::to_string),
            is_dm: guild.is_none(),
            channel_id: channel.into(),
            thread_parent: parent.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_channel_question_sees_its_channel_and_its_threads_inside_its_guild() {
        let only_its_channel = json!({"$or": [
            {"channel_id": {"$eq": "2"}}, {"thread_parent_channel_id": {"$eq": "2"}}]});
        for reach in [
            Reach::of(&asked(Some("1"), "2", None), Scope::Channel),
            // Channel scope ignores the visible channels.
            Reach::of(&asked(Some("1"), "2", Some(&["3"])), Scope::Channel),
            // Guild scope without the bot's word on visibility does not widen.
            Reach::of(&asked(Some("1"), "2", None), Scope::Guild),
        ] {
            assert_eq!(reach.filter(), only_its_channel);
            assert!(reach.admits(&stored_in(Some("1"), "2", None)));
            assert!(
                reach.admits(&stored_in(Some("1"), "5", Some("2"))),
                "its thread"
            );
            assert!(!reach.admits(&stored_in(Some("1"), "3", None)));
            assert!(!reach.admits(&stored_in(Some("1"), "5", Some("3"))));
            // The channel's id stored under another guild, or as a DM: not admitted.
            assert!(!reach.admits(&stored_in(Some("9"), "2", None)));
            assert!(!reach.admits(&stored_in(None, "2", None)));
        }
    }

    #[test]
    fn a_guild_question_sees_only_the_channels_the_bot_found_visible() {
        let reach = Reach::of(&asked(Some("1"), "2", Some(&["3", "2", "4"])), Scope::Guild);
        assert_eq!(
            reach.filter(),
            json!({"$or": [
                {"channel_id": {"$in": ["2", "3", "4"]}},
                {"thread_parent_channel_id": {"$in": ["2", "3", "4"]}}]})
        );
        for channel in ["2", "3", "4"] {
            assert!(reach.admits(&stored_in(Some("1"), channel, None)));
            assert!(!reach.admits(&stored_in(Some("7"), channel, None)));
        }
        assert!(reach.admits(&stored_in(Some("1"), "8", Some("4"))));
        assert!(!reach.admits(&stored_in(Some("1"), "5", None)));
    }

    #[test]
    fn a_dm_only_sees_its_dm_channel_even_with_guild_scope() {
        for scope in [Scope::Channel, Scope::Guild] {
            let reach = Reach::of(&asked(None, "9", Some(&["3"])), scope);
            assert_eq!(reach.filter(), json!({"channel_id": {"$eq": "9"}}));
            assert!(reach.admits(&stored_in(None, "9", None)));
            assert!(!reach.admits(&stored_in(None, "3", None)));
            // A DM question naming a guild channel's id reaches nothing in it.
            assert!(!reach.admits(&stored_in(Some("1"), "9", None)));
            let unmarked = IndexedMessage {
                is_dm: false,
                ..stored_in(None, "9", None)
            };
            assert!(!reach.admits(&unmarked), "stored without is_dm");
        }
    }

    #[test]
    fn is_dm_round_trips_through_the_index_format() {
        for guild in [None, Some("1".to_string())] {
            let message = DiscordMessage {
                message_id: "10".into(),
                channel_id: "20".into(),
                guild_id: guild.clone(),
                ..Default::default()
            };
            let stored = StoredMessage {
                id: "10".into(),
                document: String::new(),
                metadata: metadata_for(&message),
            };
            assert_eq!(IndexedMessage::from_stored(&stored).is_dm, guild.is_none());
        }
    }
}
