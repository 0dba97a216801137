//! Discord events → wire records (pure): the seed schema plus `guild_id`, the event kind and
//! the replied-to message.

use rtfm_core::ids::{ChannelId, GuildId, MessageId, QueryId, UserId};
use rtfm_core::redact::redact;
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, DiscordMessage, MessageEvent};
use serde_json::{json, Map};

/// What we need of a Discord message, independent of serenity's types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incoming {
    pub message_id: u64,
    pub channel_id: u64,
    pub guild_id: Option<u64>,
    pub channel_name: Option<String>,
    pub author_id: u64,
    pub author_name: String,
    /// `None` or `Some(0)` for the new unique usernames.
    pub author_discriminator: Option<u16>,
    pub content: String,
    /// RFC 3339.
    pub timestamp: String,
    pub reply_to: Option<u64>,
    /// Users it `@mentions` (not roles, channels or `@everyone`).
    pub mentioned_user_ids: Vec<u64>,
    /// The author's display name (`global_name`) and server nickname.
    pub author_display_name: Option<String>,
    pub author_nickname: Option<String>,
    /// In a public thread: the channel it belongs to; its starter message has the thread's id.
    pub thread_parent: Option<u64>,
    /// In a private thread: the channel it belongs to (for the community's choices only).
    pub private_thread_parent: Option<u64>,
    /// It asks the bot: published for completeness, never indexed as evidence.
    pub is_trigger: bool,
}

/// `name#1234` for legacy discriminators, plain `name` otherwise (as Discord shows it).
pub fn display_username(name: &str, discriminator: Option<u16>) -> String {
    match discriminator {
        Some(discriminator) if discriminator != 0 => format!("{name}#{discriminator:04}"),
        _ => name.to_string(),
    }
}

pub fn discord_message(incoming: &Incoming, event: MessageEvent) -> DiscordMessage {
    let channel_name = match (&incoming.channel_name, incoming.guild_id) {
        (_, None) => "DM".to_string(),
        (Some(name), Some(_)) => name.clone(),
        (None, Some(_)) => incoming.channel_id.to_string(),
    };
    DiscordMessage {
        message_id: incoming.message_id.into(),
        // Credentials never leave the bot: nothing downstream can store or quote them.
        content: truncate_chars(
            &redact(&incoming.content),
            rtfm_core::schema::MAX_CONTENT_CHARS,
        ),
        username: display_username(&incoming.author_name, incoming.author_discriminator),
        user_id: incoming.author_id.into(),
        channel_id: incoming.channel_id.into(),
        timestamp: incoming.timestamp.clone(),
        metadata: Map::from_iter([("channel_name".to_string(), json!(channel_name))]),
        guild_id: incoming.guild_id.map(GuildId::new),
        event,
        reply_to_message_id: incoming.reply_to.map(MessageId::new),
        mentioned_user_ids: incoming
            .mentioned_user_ids
            .iter()
            .copied()
            .map(UserId::new)
            .collect(),
        author_display_name: incoming.author_display_name.clone(),
        author_nickname: incoming.author_nickname.clone(),
        thread_parent_channel_id: incoming.thread_parent.map(ChannelId::new),
        private_thread_parent_channel_id: incoming.private_thread_parent.map(ChannelId::new),
        // A thread's id is the id of the message it was started from.
        thread_starter_message_id: incoming.thread_parent.map(|_| incoming.channel_id.into()),
        is_trigger: incoming.is_trigger,
        edited_content: None,
        extra: Map::new(),
    }
}

/// A delete event: only the ids matter.
pub fn deletion(message_id: u64, channel_id: u64, guild_id: Option<u64>) -> DiscordMessage {
    DiscordMessage {
        message_id: message_id.into(),
        content: String::new(),
        username: String::new(),
        user_id: 0.into(),
        channel_id: channel_id.into(),
        timestamp: now_timestamp(),
        metadata: Map::new(),
        guild_id: guild_id.map(GuildId::new),
        event: MessageEvent::Delete,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

/// A question for the processor, with a fresh uuid and the guild the trigger was seen in (the
/// processor never widens retrieval beyond it).
pub fn query(incoming: &Incoming, question: &str, source: &str) -> BotQuery {
    BotQuery {
        query_id: QueryId::random(),
        original_message_id: incoming.message_id.into(),
        question: truncate_chars(&redact(question), rtfm_core::schema::MAX_CONTENT_CHARS),
        username: display_username(&incoming.author_name, incoming.author_discriminator),
        user_id: incoming.author_id.into(),
        channel_id: incoming.channel_id.into(),
        timestamp: now_timestamp(),
        context: Map::from_iter([("source".to_string(), json!(source))]),
        guild_id: incoming.guild_id.map(GuildId::new),
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

/// The question id of a message's trigger: the same for the same message, always (a UUID v5
/// of its id), so a question asked again after a crash is recognised as the same question.
pub fn message_query_id(message_id: u64) -> QueryId {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1c_7f1e_52b4_4b8e_9a0e_2f6d_0c3a_9e11);
    let id = uuid::Uuid::new_v5(
        &NAMESPACE,
        format!("discord-message:{message_id}").as_bytes(),
    );
    QueryId::of_uuid(id)
}

/// `bot-queries.context.interaction` (echoed in `bot-responses.metadata.interaction`): what a
/// restarted bot needs to finish a deferred slash command while its token lives.
pub fn interaction_context(token: &str) -> serde_json::Value {
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(15);
    json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// The interaction token of a response, if it is still valid for `margin` more.
pub fn live_interaction_token(
    metadata: &rtfm_core::ResponseMetadata,
    margin: chrono::Duration,
) -> Option<String> {
    let interaction = metadata.extra.get("interaction")?;
    let expires_at = interaction["expires_at"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())?;
    (expires_at.to_utc() > chrono::Utc::now() + margin)
        .then(|| interaction["token"].as_str().map(str::to_string))
        .flatten()
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtfm_core::Record;

    fn incoming() -> Incoming {
        Incoming {
            message_id: 1234567890,
            channel_id: 111222333,
            guild_id: Some(444),
            channel_name: Some("general".into()),
            author_id: 987654321,
            author_name: "user".into(),
            author_discriminator: Some(1234),
            content: "Hello, this is a test message".into(),
            timestamp: "2025-11-02T12:34:56.789Z".into(),
            ..Incoming::default()
        }
    }

    #[test]
    fn discord_structure_travels_on_the_wire_by_id() {
        let incoming = Incoming {
            channel_id: 777,
            reply_to: Some(5),
            mentioned_user_ids: vec![42, 43],
            author_display_name: Some("Ann".into()),
            author_nickname: Some("annie".into()),
            thread_parent: Some(111222333),
            is_trigger: true,
            ..incoming()
        };
        let record = discord_message(&incoming, MessageEvent::Edit);
        let json: serde_json::Value = serde_json::from_slice(&record.encode()).expect("json");
        assert_eq!(json["reply_to_message_id"], "5", "an edit keeps its reply");
        assert_eq!(json["mentioned_user_ids"], serde_json::json!(["42", "43"]));
        assert_eq!(json["author_display_name"], "Ann");
        assert_eq!(json["author_nickname"], "annie");
        assert_eq!(json["thread_parent_channel_id"], "111222333");
        assert_eq!(
            json["thread_starter_message_id"], "777",
            "a thread has its starter's id"
        );
        assert_eq!(json["is_trigger"], true);
        let decoded = DiscordMessage::decode(&record.encode()).expect("valid");
        assert_eq!(decoded, record);
    }

    #[test]
    fn a_guild_message_has_the_seed_schema_plus_guild_id() {
        let record = discord_message(&incoming(), MessageEvent::Create);
        let json: serde_json::Value = serde_json::from_slice(&record.encode()).expect("json");
        assert_eq!(
            json,
            json!({"message_id": "1234567890", "content": "Hello, this is a test message", "username": "user#1234",
                   "user_id": "987654321", "channel_id": "111222333", "timestamp": "2025-11-02T12:34:56.789Z",
                   "metadata": {"channel_name": "general"}, "guild_id": "444"})
        );
        assert!(record.validate().is_ok());
    }

    #[test]
    fn new_usernames_have_no_discriminator_and_dms_are_labelled() {
        let mut dm = incoming();
        dm.guild_id = None;
        dm.author_discriminator = Some(0);
        let record = discord_message(&dm, MessageEvent::Create);
        assert_eq!(record.username, "user");
        assert_eq!(record.channel_name(), Some("DM"));
        assert_eq!(record.guild_id, None);
        assert_eq!(display_username("old", Some(7)), "old#0007");
    }

    #[test]
    fn queries_carry_a_fresh_uuid_and_the_guild() {
        let first = query(&incoming(), "how?", "message");
        let second = query(&incoming(), "how?", "message");
        assert_ne!(first.query_id, second.query_id);
        assert!(uuid::Uuid::parse_str(first.query_id.as_str()).is_ok());
        assert_eq!(first.guild_id, Some(444.into()));
        assert_eq!(first.original_message_id, "1234567890");
        assert!(first.validate().is_ok());
        assert_eq!(message_query_id(7), message_query_id(7));
        assert_ne!(message_query_id(7), message_query_id(8));
        assert!(uuid::Uuid::parse_str(message_query_id(7).as_str()).is_ok());
    }

    #[test]
    fn deletions_validate() {
        assert!(deletion(1, 2, None).validate().is_ok());
    }
}
