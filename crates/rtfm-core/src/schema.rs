//! The three wire schemas, exactly as the Python bot writes them, plus additive optional fields.
//!
//! Decoding is strict about what the contract promises (ids are decimal snowflakes, timestamps
//! are ISO 8601, text fits Discord's limits) and lenient about what it does not: unknown fields
//! are kept and written back, so a newer producer's fields survive a round trip through us.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ChannelId, GuildId, MessageId, QueryId, UserId};
use crate::topics::TopicKind;

/// Discord's maximum message length, in characters.
pub const MAX_CONTENT_CHARS: usize = 4_000;
/// Longest answer the processor may send; the bot splits it into Discord-sized messages.
pub const MAX_RESPONSE_CHARS: usize = 16_000;
/// Largest encoded record we try to decode at all (guards the JSON parser against huge input).
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// `bot-queries.visible_channel_ids` at most: a guild has at most 500 channels (Discord's
/// documented limit; threads are reached through their parent).
pub const MAX_VISIBLE_CHANNELS: usize = 500;

/// A type that travels on one of our topics. The topic is part of the type, so a `BotQuery`
/// cannot be sent to `bot-responses` by mistake.
pub trait Record: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    const TOPIC: TopicKind;

    /// The JSON Schema (draft-07) of the record as it travels, generated from the type:
    /// what a schema registry holds for `<topic>-value`. Closed at the top level (the free
    /// maps `metadata` and `context` stay open): under BACKWARD compatibility a registry then
    /// accepts exactly the contract's changes — an optional field added — and refuses a field
    /// retyped, made required or removed (on an open schema it would refuse every added
    /// field). Decoding still keeps unknown fields; what JSON Schema does not say (id shapes,
    /// lengths) is `validate`'s.
    fn wire_schema() -> Value {
        // Draft-07: the newest draft every registry's compatibility checker reads (Apicurio's
        // refuses 2020-12 with "could not determine version"); Confluent reads it too.
        let generator = schemars::generate::SchemaSettings::draft07().into_generator();
        let mut schema =
            serde_json::to_value(generator.into_root_schema_for::<Self>()).unwrap_or_default();
        if let Some(object) = schema.as_object_mut() {
            object.insert(
                "title".into(),
                Value::String(Self::TOPIC.spec().base_name.to_string()),
            );
        }
        Self::schema_rules(&mut schema);
        schema
    }

    /// Rules across fields that the type alone does not carry into its schema.
    fn schema_rules(_schema: &mut Value) {}

    /// Checks the rules serde cannot express (id shapes, timestamps, lengths).
    fn validate(&self) -> Result<(), SchemaError>;

    /// The partitioning key: the channel, so one channel's records stay in order.
    fn key(&self) -> String;

    /// Decodes and validates one record.
    fn decode(bytes: &[u8]) -> Result<Self, SchemaError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(SchemaError::TooLarge(bytes.len()));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
        let mut record: Self = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            SchemaError::Json {
                path,
                reason: err.into_inner().to_string(),
            }
        })?;
        record.normalize();
        record.validate()?;
        Ok(record)
    }

    /// Brings an additive wire form back to the one the rest of the code reads (called by
    /// `decode` before `validate`). Most records have none.
    fn normalize(&mut self) {}

    fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings, numbers and JSON maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What happened to a Discord message. Additive field `event` on `discord-messages`; absent
/// means `create`, which is all the Python bot ever sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageEvent {
    #[default]
    Create,
    /// The message was edited; its new text travels in `edited_content`, not `content`.
    Edit,
    /// The message was deleted; only the ids matter (no `content`).
    Delete,
}

impl MessageEvent {
    fn is_create(&self) -> bool {
        *self == MessageEvent::Create
    }
}

/// One Discord message on `discord-messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// The published schema is closed: a producer that adds a field registers the schema that has
// it first, which BACKWARD allows for an optional field (`Record::wire_schema`).
#[schemars(deny_unknown_fields)]
pub struct DiscordMessage {
    pub message_id: MessageId,
    /// The text of a created message. Left out of edit and delete events on the wire (an edit
    /// carries its text in `edited_content`): the seed's processor stores the `content` of
    /// every record it reads as a new message, and skips a record without one. Required for a
    /// created message (`validate`).
    #[serde(default = "absent_content", skip_serializing_if = "is_absent_content")]
    #[schemars(default)]
    pub content: String,
    pub username: String,
    pub user_id: UserId,
    pub channel_id: ChannelId,
    pub timestamp: String,
    /// `channel_name` and anything else the producer wants to attach.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Additive: the guild, absent for DMs. Scopes retrieval and builds jump links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<GuildId>,
    /// Additive: create (default), edit or delete.
    #[serde(default, skip_serializing_if = "MessageEvent::is_create")]
    pub event: MessageEvent,
    /// Additive: the message this one replies to (Discord's `message_reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<MessageId>,
    /// Additive: the users this message `@mentions` (Discord's `mentions`; roles, channels and
    /// `@everyone` are not users). Retrieval matches them by id, not by text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_user_ids: Vec<UserId>,
    /// Additive: the author's display name (`global_name`) and server nickname, besides the
    /// `username`; people type these when they address each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_nickname: Option<String>,
    /// Additive: for a message in a thread (`channel_id` is the thread), the channel the
    /// thread belongs to and the message it was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_parent_channel_id: Option<ChannelId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_starter_message_id: Option<MessageId>,
    /// Additive: for a message in a *private* thread, the channel the thread belongs to. Used
    /// only for the community's choices (excluding or deleting a channel takes its private
    /// threads too); never to widen a question's reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_thread_parent_channel_id: Option<ChannelId>,
    /// Additive: the message asks the bot (a trigger phrase or a mention of the bot). It is
    /// never indexed as evidence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_trigger: bool,
    /// Additive: an edit's new text, on the wire in place of `content` (see `content`);
    /// `decode` moves it into `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_content: Option<String>,
    /// Fields we do not know yet, preserved on re-encode.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

/// What `content` holds between parsing and `normalize` when the field was not on the wire
/// (text no message can be: it starts with a NUL). Never seen outside decoding.
const ABSENT_CONTENT: &str = "\u{0}absent";

fn absent_content() -> String {
    ABSENT_CONTENT.to_string()
}

fn is_absent_content(content: &str) -> bool {
    content == ABSENT_CONTENT
}

impl DiscordMessage {
    /// The wire form of an event: an edit's text in `edited_content` and no `content`, a
    /// delete without text; a create as it is.
    fn for_the_wire(mut self) -> Self {
        match self.event {
            MessageEvent::Create => {}
            MessageEvent::Edit => {
                self.edited_content = Some(std::mem::replace(&mut self.content, absent_content()))
            }
            MessageEvent::Delete => self.content = absent_content(),
        }
        self
    }

    /// Mentioned users: the wire field, else `<@id>` / `<@!id>` in the text (role `<@&id>`
    /// and channel `<#id>` mentions are not users).
    pub fn mentioned_users(&self) -> Vec<UserId> {
        if !self.mentioned_user_ids.is_empty() {
            return self.mentioned_user_ids.clone();
        }
        let mut users = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let id_text = rest.strip_prefix('!').unwrap_or(rest);
            let digits: String = id_text.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(user) = digits.parse::<UserId>() {
                if id_text[digits.len()..].starts_with('>') && !users.contains(&user) {
                    users.push(user);
                }
            }
        }
        users
    }

    pub fn channel_name(&self) -> Option<&str> {
        self.metadata.get("channel_name").and_then(Value::as_str)
    }

    pub fn timestamp_utc(&self) -> Option<DateTime<Utc>> {
        parse_timestamp(&self.timestamp)
    }
}

impl Record for DiscordMessage {
    const TOPIC: TopicKind = TopicKind::DiscordMessages;

    fn normalize(&mut self) {
        if self.event == MessageEvent::Edit {
            if let Some(edited) = self.edited_content.take() {
                self.content = edited;
            }
        }
        if is_absent_content(&self.content) && self.event != MessageEvent::Create {
            self.content.clear();
        }
    }

    fn schema_rules(schema: &mut Value) {
        // What `validate` checks: a created message (no `event`, or `create`) has `content`;
        // an edit or a delete travels without it.
        if let Some(object) = schema.as_object_mut() {
            object.insert(
                "anyOf".into(),
                serde_json::json!([
                    {"required": ["content"]},
                    {"required": ["event"], "properties": {"event": {"enum": ["edit", "delete"]}}}
                ]),
            );
        }
    }

    fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings, numbers and JSON maps cannot fail.
        serde_json::to_vec(&self.clone().for_the_wire()).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), SchemaError> {
        // The ids were read as ids (`crate::ids`): a malformed one fails decoding itself.
        timestamp("timestamp", &self.timestamp)?;
        if is_absent_content(&self.content) {
            return Err(SchemaError::invalid(
                "content",
                "missing (a created message needs it; edits carry edited_content)",
            ));
        }
        max_chars("content", &self.content, MAX_CONTENT_CHARS)?;
        if self.username.trim().is_empty() && self.event != MessageEvent::Delete {
            return Err(SchemaError::invalid("username", "must not be empty"));
        }
        if let Some(name) = self.metadata.get("channel_name") {
            if !name.is_string() {
                return Err(SchemaError::invalid(
                    "metadata.channel_name",
                    "must be a string",
                ));
            }
        }
        Ok(())
    }

    fn key(&self) -> String {
        self.channel_id.to_string()
    }
}

/// A question for the processor on `bot-queries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// The published schema is closed: a producer that adds a field registers the schema that has
// it first, which BACKWARD allows for an optional field (`Record::wire_schema`).
#[schemars(deny_unknown_fields)]
pub struct BotQuery {
    pub query_id: QueryId,
    pub original_message_id: MessageId,
    pub question: String,
    pub username: String,
    pub user_id: UserId,
    pub channel_id: ChannelId,
    pub timestamp: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Additive: the guild the bot saw the trigger in (absent for DMs). The processor never
    /// retrieves outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<GuildId>,
    /// Additive: the other channels of the guild whose messages everyone who can read the
    /// question's channel may read too, as the bot computed them from Discord's permissions.
    /// Guild-wide retrieval (`RETRIEVAL_SCOPE=guild`) searches only the question's channel
    /// and these; without the field it searches only the question's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_channel_ids: Option<Vec<ChannelId>>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

impl BotQuery {
    pub fn timestamp_utc(&self) -> Option<DateTime<Utc>> {
        parse_timestamp(&self.timestamp)
    }
}

impl Record for BotQuery {
    const TOPIC: TopicKind = TopicKind::BotQueries;

    fn validate(&self) -> Result<(), SchemaError> {
        if let Some(channels) = &self.visible_channel_ids {
            if channels.len() > MAX_VISIBLE_CHANNELS {
                return Err(SchemaError::invalid(
                    "visible_channel_ids",
                    format!("lists more than {MAX_VISIBLE_CHANNELS} channels"),
                ));
            }
        }
        timestamp("timestamp", &self.timestamp)?;
        max_chars("question", &self.question, MAX_CONTENT_CHARS)?;
        Ok(())
    }

    fn key(&self) -> String {
        self.channel_id.to_string()
    }
}

/// An answer for the bot on `bot-responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// The published schema is closed: a producer that adds a field registers the schema that has
// it first, which BACKWARD allows for an optional field (`Record::wire_schema`).
#[schemars(deny_unknown_fields)]
pub struct BotResponse {
    pub response_id: String,
    pub query_id: QueryId,
    pub original_message_id: MessageId,
    pub response_text: String,
    pub channel_id: ChannelId,
    pub timestamp: String,
    #[serde(default)]
    pub metadata: ResponseMetadata,
    /// Additive: the guild of the original message (absent for DMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<GuildId>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
}

impl Record for BotResponse {
    const TOPIC: TopicKind = TopicKind::BotResponses;

    fn validate(&self) -> Result<(), SchemaError> {
        non_empty("response_id", &self.response_id)?;
        timestamp("timestamp", &self.timestamp)?;
        max_chars("response_text", &self.response_text, MAX_RESPONSE_CHARS)?;
        Ok(())
    }

    fn key(&self) -> String {
        self.channel_id.to_string()
    }
}

/// `bot-responses.metadata`: the seed's `model`, `confidence`, `sources_count`, plus additive
/// citation and provenance fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResponseMetadata {
    #[serde(default)]
    pub model: String,
    /// Best similarity among the sources, 0..1 (0 when nothing was found).
    #[serde(default)]
    pub confidence: f64,
    #[serde(default)]
    pub sources_count: u32,
    /// Additive: the message ids the answer cites, in citation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_message_ids: Vec<MessageId>,
    /// Additive: `gemini`, `openai`, `extractive` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Additive: true when the configured model failed and the answer fell back to extractive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

mod check;
mod control;
use check::{max_chars, non_empty, timestamp};
pub use check::{now_timestamp, parse_timestamp, SchemaError};
pub use control::{ControlKind, ControlRecord, Subject};

#[cfg(test)]
mod tests;
