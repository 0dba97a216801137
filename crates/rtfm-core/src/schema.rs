//! The three wire schemas, exactly as the Python bot writes them, plus additive optional fields.
//!
//! Decoding is strict about what the contract promises (ids are decimal snowflakes, timestamps
//! are ISO 8601, text fits Discord's limits) and lenient about what it does not: unknown fields
//! are kept and written back, so a newer producer's fields survive a round trip through us.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Why a record could not be decoded. The message names the field and the rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("record is {0} bytes, larger than the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("invalid JSON at `{path}`: {reason}")]
    Json { path: String, reason: String },
    #[error("field `{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SchemaError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// A type that travels on one of our topics. The topic is part of the type, so a `BotQuery`
/// cannot be sent to `bot-responses` by mistake.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    const TOPIC: TopicKind;

    /// Checks the rules serde cannot express (id shapes, timestamps, lengths).
    fn validate(&self) -> Result<(), SchemaError>;

    /// The partitioning key: the channel, so one channel's records stay in order.
    fn key(&self) -> &str;

    /// Decodes and validates one record.
    fn decode(bytes: &[u8]) -> Result<Self, SchemaError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(SchemaError::TooLarge(bytes.len()));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
        let record: Self = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            SchemaError::Json {
                path,
                reason: err.into_inner().to_string(),
            }
        })?;
        record.validate()?;
        Ok(record)
    }

    fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings, numbers and JSON maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What happened to a Discord message. Additive field `event` on `discord-messages`; absent
/// means `create`, which is all the Python bot ever sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageEvent {
    #[default]
    Create,
    /// The message was edited; `content` is the new text.
    Edit,
    /// The message was deleted; `content` is empty and only the ids matter.
    Delete,
}

impl MessageEvent {
    fn is_create(&self) -> bool {
        *self == MessageEvent::Create
    }
}

/// One Discord message on `discord-messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscordMessage {
    pub message_id: String,
    pub content: String,
    pub username: String,
    pub user_id: String,
    pub channel_id: String,
    pub timestamp: String,
    /// `channel_name` and anything else the producer wants to attach.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Additive: the guild, absent for DMs. Scopes retrieval and builds jump links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    /// Additive: create (default), edit or delete.
    #[serde(default, skip_serializing_if = "MessageEvent::is_create")]
    pub event: MessageEvent,
    /// Additive: the message this one replies to (Discord's `message_reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<String>,
    /// Additive: the users this message `@mentions` (Discord's `mentions`; roles, channels and
    /// `@everyone` are not users). Retrieval matches them by id, not by text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_user_ids: Vec<String>,
    /// Additive: the author's display name (`global_name`) and server nickname, besides the
    /// `username`; people type these when they address each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_nickname: Option<String>,
    /// Additive: for a message in a thread (`channel_id` is the thread), the channel the
    /// thread belongs to and the message it was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_parent_channel_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_starter_message_id: Option<String>,
    /// Additive: the message asks the bot (a trigger phrase or a mention of the bot). It is
    /// never indexed as evidence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_trigger: bool,
    /// Fields we do not know yet, preserved on re-encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DiscordMessage {
    /// Mentioned users: the wire field, else `<@id>` / `<@!id>` in the text (role `<@&id>`
    /// and channel `<#id>` mentions are not users).
    pub fn mentioned_users(&self) -> Vec<String> {
        if !self.mentioned_user_ids.is_empty() {
            return self.mentioned_user_ids.clone();
        }
        let mut users = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let id_text = rest.strip_prefix('!').unwrap_or(rest);
            let digits: String = id_text.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty()
                && id_text[digits.len()..].starts_with('>')
                && !users.contains(&digits)
            {
                users.push(digits);
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

    fn validate(&self) -> Result<(), SchemaError> {
        snowflake("message_id", &self.message_id)?;
        snowflake("user_id", &self.user_id)?;
        snowflake("channel_id", &self.channel_id)?;
        if let Some(guild_id) = &self.guild_id {
            snowflake("guild_id", guild_id)?;
        }
        if let Some(reply_to) = &self.reply_to_message_id {
            snowflake("reply_to_message_id", reply_to)?;
        }
        for user in &self.mentioned_user_ids {
            snowflake("mentioned_user_ids", user)?;
        }
        if let Some(parent) = &self.thread_parent_channel_id {
            snowflake("thread_parent_channel_id", parent)?;
        }
        if let Some(starter) = &self.thread_starter_message_id {
            snowflake("thread_starter_message_id", starter)?;
        }
        timestamp("timestamp", &self.timestamp)?;
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

    fn key(&self) -> &str {
        &self.channel_id
    }
}

/// A question for the processor on `bot-queries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotQuery {
    pub query_id: String,
    pub original_message_id: String,
    pub question: String,
    pub username: String,
    pub user_id: String,
    pub channel_id: String,
    pub timestamp: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Additive: the guild the bot saw the trigger in (absent for DMs). The processor never
    /// retrieves outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    /// Additive: the other channels of the guild whose messages everyone who can read the
    /// question's channel may read too, as the bot computed them from Discord's permissions.
    /// Guild-wide retrieval (`RETRIEVAL_SCOPE=guild`) searches only the question's channel
    /// and these; without the field it searches only the question's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_channel_ids: Option<Vec<String>>,
    #[serde(flatten)]
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
        non_empty("query_id", &self.query_id)?;
        snowflake("original_message_id", &self.original_message_id)?;
        snowflake("user_id", &self.user_id)?;
        snowflake("channel_id", &self.channel_id)?;
        if let Some(guild_id) = &self.guild_id {
            snowflake("guild_id", guild_id)?;
        }
        if let Some(channels) = &self.visible_channel_ids {
            if channels.len() > MAX_VISIBLE_CHANNELS {
                return Err(SchemaError::invalid(
                    "visible_channel_ids",
                    format!("lists more than {MAX_VISIBLE_CHANNELS} channels"),
                ));
            }
            for channel in channels {
                snowflake("visible_channel_ids", channel)?;
            }
        }
        timestamp("timestamp", &self.timestamp)?;
        max_chars("question", &self.question, MAX_CONTENT_CHARS)?;
        Ok(())
    }

    fn key(&self) -> &str {
        &self.channel_id
    }
}

/// An answer for the bot on `bot-responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotResponse {
    pub response_id: String,
    pub query_id: String,
    pub original_message_id: String,
    pub response_text: String,
    pub channel_id: String,
    pub timestamp: String,
    #[serde(default)]
    pub metadata: ResponseMetadata,
    /// Additive: the guild of the original message (absent for DMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for BotResponse {
    const TOPIC: TopicKind = TopicKind::BotResponses;

    fn validate(&self) -> Result<(), SchemaError> {
        non_empty("response_id", &self.response_id)?;
        non_empty("query_id", &self.query_id)?;
        snowflake("original_message_id", &self.original_message_id)?;
        snowflake("channel_id", &self.channel_id)?;
        if let Some(guild_id) = &self.guild_id {
            snowflake("guild_id", guild_id)?;
        }
        timestamp("timestamp", &self.timestamp)?;
        max_chars("response_text", &self.response_text, MAX_RESPONSE_CHARS)?;
        for id in &self.metadata.source_message_ids {
            snowflake("metadata.source_message_ids", id)?;
        }
        Ok(())
    }

    fn key(&self) -> &str {
        &self.channel_id
    }
}

/// `bot-responses.metadata`: the seed's `model`, `confidence`, `sources_count`, plus additive
/// citation and provenance fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    pub source_message_ids: Vec<String>,
    /// Additive: `gemini`, `openai`, `extractive` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Additive: true when the configured model failed and the answer fell back to extractive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Parses ISO 8601 with an offset (`…Z`, `…+02:00`) or without one (Python's naive
/// `datetime.utcnow().isoformat()`, read as UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Now, as the millisecond ISO 8601 the seed writes.
pub fn now_timestamp() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn non_empty(field: &'static str, value: &str) -> Result<(), SchemaError> {
    if value.trim().is_empty() {
        return Err(SchemaError::invalid(field, "must not be empty"));
    }
    Ok(())
}

fn snowflake(field: &'static str, value: &str) -> Result<(), SchemaError> {
    if value.is_empty() {
        return Err(SchemaError::invalid(field, "must not be empty"));
    }
    if value.len() > 20 || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(SchemaError::invalid(
            field,
            "must be a decimal Discord id (up to 20 digits)",
        ));
    }
    Ok(())
}

fn timestamp(field: &'static str, value: &str) -> Result<(), SchemaError> {
    if parse_timestamp(value).is_none() {
        return Err(SchemaError::invalid(
            field,
            "must be an ISO 8601 timestamp such as 2025-11-02T12:34:56.789Z",
        ));
    }
    Ok(())
}

fn max_chars(field: &'static str, value: &str, limit: usize) -> Result<(), SchemaError> {
    let chars = value.chars().count();
    if chars > limit {
        return Err(SchemaError::invalid(
            field,
            format!("has {chars} characters, more than the {limit} allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example_message() -> Value {
        json!({"message_id": "1234567890", "content": "Hello, this is a test message", "username": "user#1234",
         "user_id": "987654321", "channel_id": "111222333", "timestamp": "2025-11-02T12:34:56.789Z",
         "metadata": {"channel_name": "general"}})
    }

    fn example_query() -> Value {
        json!({"query_id": "query_abc123", "original_message_id": "1234567890", "question": "what is the API endpoint?",
         "username": "user#1234", "user_id": "987654321", "channel_id": "111222333",
         "timestamp": "2025-11-02T12:34:56.789Z", "context": {}})
    }

    fn example_response() -> Value {
        json!({"response_id": "response_xyz789", "query_id": "query_abc123", "original_message_id": "1234567890",
         "response_text": "The API endpoint is /api/v1/data", "channel_id": "111222333",
         "timestamp": "2025-11-02T12:34:57.123Z",
         "metadata": {"model": "gemini-2.5-flash", "confidence": 0.95, "sources_count": 3}})
    }

    fn round_trip<T: Record>(value: Value) -> Value {
        let bytes = serde_json::to_vec(&value).expect("test json");
        let record = T::decode(&bytes).expect("example payload decodes");
        serde_json::from_slice(&record.encode()).expect("encoded json")
    }

    fn decode_error<T: Record + std::fmt::Debug>(value: Value) -> String {
        let bytes = serde_json::to_vec(&value).expect("test json");
        T::decode(&bytes).expect_err("must be rejected").to_string()
    }

    fn with(mut value: Value, field: &str, new: Value) -> Value {
        value[field] = new;
        value
    }

    fn without(mut value: Value, field: &str) -> Value {
        value.as_object_mut().expect("object").remove(field);
        value
    }

    #[test]
    fn documented_examples_round_trip_unchanged() {
        assert_eq!(
            round_trip::<DiscordMessage>(example_message()),
            example_message()
        );
        assert_eq!(round_trip::<BotQuery>(example_query()), example_query());
        assert_eq!(
            round_trip::<BotResponse>(example_response()),
            example_response()
        );
    }

    #[test]
    fn unknown_fields_are_tolerated_and_preserved() {
        let value = with(example_message(), "future_field", json!({"x": 1}));
        assert_eq!(round_trip::<DiscordMessage>(value.clone()), value);
        let mut response = example_response();
        response["metadata"]["temperature"] = json!(0.2);
        assert_eq!(round_trip::<BotResponse>(response.clone()), response);
    }

    #[test]
    fn optional_objects_default_to_empty() {
        let message = DiscordMessage::decode(
            &serde_json::to_vec(&without(example_message(), "metadata")).expect("json"),
        )
        .expect("decodes");
        assert!(message.metadata.is_empty());
        let query = BotQuery::decode(
            &serde_json::to_vec(&without(example_query(), "context")).expect("json"),
        )
        .expect("decodes");
        assert!(query.context.is_empty());
        let response = BotResponse::decode(
            &serde_json::to_vec(&without(example_response(), "metadata")).expect("json"),
        )
        .expect("decodes");
        assert_eq!(response.metadata, ResponseMetadata::default());
    }

    #[test]
    fn naive_python_timestamps_are_accepted_as_utc() {
        let value = with(
            example_message(),
            "timestamp",
            json!("2025-11-02T12:34:56.789012"),
        );
        let bytes = serde_json::to_vec(&value).expect("json");
        let message = DiscordMessage::decode(&bytes).expect("naive timestamp decodes");
        assert_eq!(
            message.timestamp_utc().map(|t| t.to_rfc3339()),
            Some("2025-11-02T12:34:56.789012+00:00".to_string())
        );
        assert!(parse_timestamp("2025-11-02T12:34:56+02:00").is_some());
        assert!(parse_timestamp("2025-11-02T12:34:56").is_some());
    }

    #[test]
    fn malformed_json_is_rejected_with_its_position() {
        let err = DiscordMessage::decode(b"{\"message_id\": ").expect_err("rejected");
        assert!(matches!(err, SchemaError::Json { .. }), "{err}");
    }

    #[test]
    fn missing_field_is_rejected_naming_it() {
        let err = decode_error::<DiscordMessage>(without(example_message(), "content"));
        assert!(err.contains("content"), "{err}");
        let err = decode_error::<BotQuery>(without(example_query(), "question"));
        assert!(err.contains("question"), "{err}");
        let err = decode_error::<BotResponse>(without(example_response(), "response_text"));
        assert!(err.contains("response_text"), "{err}");
    }

    #[test]
    fn wrong_type_is_rejected_naming_the_field() {
        let err =
            decode_error::<DiscordMessage>(with(example_message(), "user_id", json!(987654321)));
        assert!(err.contains("user_id"), "{err}");
        let err = decode_error::<BotResponse>(with(
            example_response(),
            "metadata",
            json!({"confidence": "high"}),
        ));
        assert!(err.contains("metadata.confidence"), "{err}");
    }

    #[test]
    fn non_decimal_ids_are_rejected() {
        for field in ["message_id", "user_id", "channel_id"] {
            let err = decode_error::<DiscordMessage>(with(example_message(), field, json!("12a4")));
            assert!(err.contains(field) && err.contains("decimal"), "{err}");
        }
        let err = decode_error::<BotQuery>(with(example_query(), "original_message_id", json!("")));
        assert!(
            err.contains("original_message_id") && err.contains("empty"),
            "{err}"
        );
        let err = decode_error::<DiscordMessage>(with(example_message(), "guild_id", json!("-5")));
        assert!(err.contains("guild_id"), "{err}");
    }

    #[test]
    fn query_and_response_ids_may_be_any_non_empty_string() {
        let query = with(
            example_query(),
            "query_id",
            json!("9d3c7c1e-3a51-4f6e-9c5e-0e1d2b3a4c5d"),
        );
        assert!(BotQuery::decode(&serde_json::to_vec(&query).expect("json")).is_ok());
        let err = decode_error::<BotQuery>(with(example_query(), "query_id", json!("  ")));
        assert!(err.contains("query_id"), "{err}");
        let err = decode_error::<BotResponse>(with(example_response(), "response_id", json!("")));
        assert!(err.contains("response_id"), "{err}");
    }

    #[test]
    fn unparseable_timestamp_is_rejected() {
        let err = decode_error::<DiscordMessage>(with(
            example_message(),
            "timestamp",
            json!("yesterday"),
        ));
        assert!(
            err.contains("timestamp") && err.contains("ISO 8601"),
            "{err}"
        );
    }

    #[test]
    fn content_over_discord_limit_is_rejected_not_truncated() {
        let at_limit = with(
            example_message(),
            "content",
            json!("é".repeat(MAX_CONTENT_CHARS)),
        );
        assert!(DiscordMessage::decode(&serde_json::to_vec(&at_limit).expect("json")).is_ok());
        let err = decode_error::<DiscordMessage>(with(
            example_message(),
            "content",
            json!("x".repeat(MAX_CONTENT_CHARS + 1)),
        ));
        assert!(err.contains("content") && err.contains("4001"), "{err}");
    }

    #[test]
    fn visible_channels_are_ids_and_at_most_a_guilds_worth() {
        let listed = with(example_query(), "visible_channel_ids", json!(["1", "22"]));
        assert_eq!(round_trip::<BotQuery>(listed.clone()), listed);
        let query = BotQuery::decode(&serde_json::to_vec(&listed).expect("json")).expect("ok");
        assert_eq!(
            query.visible_channel_ids,
            Some(vec!["1".into(), "22".into()])
        );
        let err = decode_error::<BotQuery>(with(
            example_query(),
            "visible_channel_ids",
            json!(["1", "general"]),
        ));
        assert!(err.contains("visible_channel_ids"), "{err}");
        let too_many: Vec<String> = (1..=MAX_VISIBLE_CHANNELS + 1)
            .map(|id| id.to_string())
            .collect();
        let err = decode_error::<BotQuery>(with(
            example_query(),
            "visible_channel_ids",
            json!(too_many),
        ));
        assert!(err.contains("more than 500"), "{err}");
        let err =
            decode_error::<BotQuery>(with(example_query(), "visible_channel_ids", json!("1")));
        assert!(err.contains("visible_channel_ids"), "{err}");
    }

    #[test]
    fn question_over_limit_is_rejected() {
        let err = decode_error::<BotQuery>(with(
            example_query(),
            "question",
            json!("x".repeat(MAX_CONTENT_CHARS + 1)),
        ));
        assert!(err.contains("question"), "{err}");
    }

    #[test]
    fn response_text_over_limit_is_rejected() {
        let err = decode_error::<BotResponse>(with(
            example_response(),
            "response_text",
            json!("x".repeat(MAX_RESPONSE_CHARS + 1)),
        ));
        assert!(
            err.contains("response_text") && err.contains("16000"),
            "{err}"
        );
    }

    #[test]
    fn unknown_float_fields_round_trip_exactly() {
        // Found by the mutation fuzzer: without serde_json's `float_roundtrip` the last digits
        // of such a number changed on every decode/encode.
        let value = with(example_message(), "x_ratio", json!(1.250658860442029e-76));
        let once = DiscordMessage::decode(&serde_json::to_vec(&value).expect("json"))
            .expect("decodes")
            .encode();
        let twice = DiscordMessage::decode(&once).expect("decodes").encode();
        assert_eq!(once, twice);
    }

    #[test]
    fn huge_records_are_rejected_before_parsing() {
        let bytes = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(
            DiscordMessage::decode(&bytes),
            Err(SchemaError::TooLarge(MAX_RECORD_BYTES + 1))
        );
    }

    #[test]
    fn edit_and_delete_events_round_trip() {
        let value = with(
            with(example_message(), "event", json!("delete")),
            "content",
            json!(""),
        );
        let message: DiscordMessage =
            DiscordMessage::decode(&serde_json::to_vec(&value).expect("json")).expect("decodes");
        assert_eq!(message.event, MessageEvent::Delete);
        assert_eq!(round_trip::<DiscordMessage>(value.clone()), value);
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = DiscordMessage::decode(&bytes);
            let _ = BotQuery::decode(&bytes);
            let _ = BotResponse::decode(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_arbitrary_json_strings(text in "\\PC{0,300}") {
            let _ = DiscordMessage::decode(text.as_bytes());
            let _ = BotQuery::decode(text.as_bytes());
            let _ = BotResponse::decode(text.as_bytes());
        }

        /// Well-formed JSON that is wrong in every way validation must catch: the documented
        /// payloads with fields removed, retyped, replaced by huge or odd Unicode strings, and
        /// extra fields added. The parser accepts all of it; validation decides.
        #[test]
        fn mutated_documented_payloads_are_validated_not_just_parsed(
            which in 0usize..3,
            mutations in proptest::collection::vec((0usize..16, mutation()), 1..5),
        ) {
            let original = [example_message(), example_query(), example_response()][which].clone();
            let mut value = original.clone();
            let fields: Vec<String> = original.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
            for (index, mutation) in &mutations {
                let field = fields[index % fields.len()].clone();
                let object = value.as_object_mut().expect("object");
                match mutation {
                    Mutation::Remove => {
                        object.remove(&field);
                    }
                    Mutation::Retype(new) => {
                        object.insert(field, new.clone());
                    }
                    Mutation::Text(text) => {
                        object.insert(field, Value::String(text.clone()));
                    }
                    Mutation::Extra(name, extra) => {
                        object.insert(name.clone(), extra.clone());
                    }
                }
            }
            // What validation must refuse, judged on the final record.
            let mut must_fail = None;
            for field in &fields {
                let before = &original[field.as_str()];
                match value.get(field.as_str()) {
                    None if !["metadata", "context"].contains(&field.as_str()) => {
                        must_fail = Some(format!("required `{field}` missing"));
                    }
                    None => {}
                    Some(after) if before.is_string() && !after.is_string() => {
                        must_fail = Some(format!("string `{field}` is {after}"));
                    }
                    Some(after) if before.is_object() && !after.is_object() => {
                        must_fail = Some(format!("object `{field}` is {after}"));
                    }
                    Some(Value::String(text))
                        if field.ends_with("_id")
                            && field != "query_id"
                            && field != "response_id"
                            && !text.chars().all(|c| c.is_ascii_digit()) =>
                    {
                        must_fail = Some(format!("id `{field}` = {text:?}"));
                    }
                    Some(_) => {}
                }
            }
            let bytes = serde_json::to_vec(&value).expect("json");
            let results = [
                DiscordMessage::decode(&bytes).map(|r| r.encode()),
                BotQuery::decode(&bytes).map(|r| r.encode()),
                BotResponse::decode(&bytes).map(|r| r.encode()),
            ];
            match &results[which] {
                Ok(encoded) => {
                    proptest::prop_assert!(must_fail.is_none(), "accepted although {:?}: {value}", must_fail);
                    // What is accepted round-trips to the same record.
                    let again = match which {
                        0 => DiscordMessage::decode(encoded).map(|r| r.encode()),
                        1 => BotQuery::decode(encoded).map(|r| r.encode()),
                        _ => BotResponse::decode(encoded).map(|r| r.encode()),
                    };
                    proptest::prop_assert_eq!(again.as_ref(), Ok(encoded));
                }
                Err(err) => proptest::prop_assert!(!err.to_string().is_empty()),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Remove,
        Retype(Value),
        Text(String),
        Extra(String, Value),
    }

    fn odd_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "\\PC{0,40}",
            // Right-to-left override, zero-width joiners, combining marks, emoji, NUL, BOM.
            proptest::sample::select(vec![
                "\u{202e}evil",
                "a\u{200d}b",
                "e\u{301}\u{301}\u{301}",
                "🦀🔥",
                "nul\u{0}byte",
                "\u{feff}bom",
                "",
                " ",
                "12345678901234567890123",
                "-1",
                "١٢٣",
            ])
            .prop_map(str::to_string),
            (1usize..20_000).prop_map(|n| "y".repeat(n)),
            "[0-9]{1,20}",
        ]
    }

    fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
        use proptest::prelude::*;
        let wrong_type = prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(Value::Null),
            Just(json!([1, "two"])),
            Just(json!({"nested": {"deeper": []}})),
            any::<f64>().prop_map(|f| json!(f)),
        ];
        prop_oneof![
            Just(Mutation::Remove),
            wrong_type.clone().prop_map(Mutation::Retype),
            odd_text().prop_map(Mutation::Text),
            (
                "[a-z_]{1,12}",
                prop_oneof![wrong_type, odd_text().prop_map(Value::String)]
            )
                .prop_map(|(name, value)| Mutation::Extra(format!("x_{name}"), value)),
        ]
    }
}
