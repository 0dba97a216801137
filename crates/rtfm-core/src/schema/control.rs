//! `rtfm-control`: the community's choices, one record per thing chosen about, keyed so that
//! the compacted topic keeps the latest choice of each (see `docs/contract.md`).
//!
//! | kind | key | says |
//! |---|---|---|
//! | `member` | `member:<guild>:<user>` | `indexed: false` after `/rtfm forget-me`, `true` after `/rtfm remember-me` |
//! | `channel` | `channel:<guild>:<channel>` | `indexed` as a moderator chose, `false` when the channel or thread was deleted |
//! | `guild` | `guild:<guild>` | `indexed: false` when RTFM was removed from the guild, `true` when it came back |
//! | `receipt` | `receipt:<guild>:member:<user>`, `receipt:<guild>:channel:<channel>`, `receipt:<guild>:guild` | what a removal deleted: `removed` messages, `done` once finished, for the request `request_id` |
//! | `solved` | `solved:<guild>:<channel>`, `solved:<guild>:<channel>:<message>` | `solved: true` when a forum post was tagged solved (or answered, resolved), or the asker marked a message ✅; `false` when that was undone |
//!
//! Ids only, never message content.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{max_chars, non_empty, timestamp, Record, SchemaError};
use crate::ids::{ChannelId, GuildId, MessageId, UserId};
use crate::topics::TopicKind;

/// What a control record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    Member,
    Channel,
    Guild,
    Receipt,
    Solved,
}

/// One choice (or one receipt) on `rtfm-control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ControlRecord {
    pub kind: ControlKind,
    pub guild_id: GuildId,
    /// `member`, and a member's receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// `channel` (a channel, thread or forum), and a channel's receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    /// `member`, `channel`, `guild`: whether RTFM indexes (and quotes) it from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed: Option<bool>,
    /// Who chose: the member, or the moderator who ran the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
    /// Why, in a few words (`excluded by a moderator`, `channel deleted`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request (the interaction's id) a choice came from, or a receipt answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `receipt`: messages removed from the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    /// `receipt`: the removal has finished (`false`: counted, still deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
    /// `solved`: the message marked as the answer (absent: the whole thread, a forum post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// `solved`: whether it is marked solved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solved: Option<bool>,
    /// When it was chosen (or, for a receipt, written): ISO 8601.
    pub at: String,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Map<String, Value>,
    /// The compaction key, derived from the fields (`normalize`).
    #[serde(skip)]
    #[schemars(skip)]
    key: String,
}

/// What a receipt is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Member(UserId),
    Channel(ChannelId),
    Guild,
}

impl ControlRecord {
    fn new(kind: ControlKind, guild_id: GuildId) -> Self {
        Self {
            kind,
            guild_id,
            user_id: None,
            channel_id: None,
            indexed: None,
            by: None,
            reason: None,
            request_id: None,
            removed: None,
            done: None,
            message_id: None,
            solved: None,
            at: super::now_timestamp(),
            extra: Map::new(),
            key: String::new(),
        }
        .keyed()
    }

    fn keyed(mut self) -> Self {
        self.key = self.derive_key();
        self
    }

    /// A member's choice: `indexed: false` is forget-me.
    pub fn member(guild_id: GuildId, user_id: UserId, indexed: bool) -> Self {
        Self {
            user_id: Some(user_id),
            indexed: Some(indexed),
            by: Some(user_id),
            ..Self::new(ControlKind::Member, guild_id)
        }
        .keyed()
    }

    /// A channel's (thread's, forum's) state.
    pub fn channel(guild_id: GuildId, channel_id: ChannelId, indexed: bool, reason: &str) -> Self {
        Self {
            channel_id: Some(channel_id),
            indexed: Some(indexed),
            reason: Some(reason.to_string()),
            ..Self::new(ControlKind::Channel, guild_id)
        }
        .keyed()
    }

    /// RTFM's presence in a guild.
    pub fn presence(guild_id: GuildId, indexed: bool, reason: &str) -> Self {
        Self {
            indexed: Some(indexed),
            reason: Some(reason.to_string()),
            ..Self::new(ControlKind::Guild, guild_id)
        }
        .keyed()
    }

    /// What a removal came to.
    pub fn receipt(
        guild_id: GuildId,
        subject: Subject,
        request_id: &str,
        removed: u64,
        done: bool,
    ) -> Self {
        let (user_id, channel_id) = match subject {
            Subject::Member(user) => (Some(user), None),
            Subject::Channel(channel) => (None, Some(channel)),
            Subject::Guild => (None, None),
        };
        Self {
            user_id,
            channel_id,
            request_id: Some(request_id.to_string()),
            removed: Some(removed),
            done: Some(done),
            ..Self::new(ControlKind::Receipt, guild_id)
        }
        .keyed()
    }

    /// A thread (forum post) or one message of a channel marked as solved, or no longer.
    pub fn solved(
        guild_id: GuildId,
        channel_id: ChannelId,
        message_id: Option<MessageId>,
        solved: bool,
    ) -> Self {
        Self {
            channel_id: Some(channel_id),
            message_id,
            solved: Some(solved),
            ..Self::new(ControlKind::Solved, guild_id)
        }
        .keyed()
    }

    /// Who chose, and with which request.
    pub fn requested(mut self, by: UserId, request_id: &str) -> Self {
        self.by = Some(by);
        self.request_id = Some(request_id.to_string());
        self
    }

    /// The record's key on the compacted topic.
    pub fn compaction_key(&self) -> &str {
        &self.key
    }

    fn derive_key(&self) -> String {
        let guild = self.guild_id;
        let user = self.user_id.map(|id| id.to_string()).unwrap_or_default();
        let channel = self.channel_id.map(|id| id.to_string()).unwrap_or_default();
        match self.kind {
            ControlKind::Member => format!("member:{guild}:{user}"),
            ControlKind::Channel => format!("channel:{guild}:{channel}"),
            ControlKind::Guild => format!("guild:{guild}"),
            ControlKind::Solved => match &self.message_id {
                Some(message) => format!("solved:{guild}:{channel}:{message}"),
                None => format!("solved:{guild}:{channel}"),
            },
            ControlKind::Receipt => match self.subject() {
                Some(Subject::Member(user)) => format!("receipt:{guild}:member:{user}"),
                Some(Subject::Channel(channel)) => format!("receipt:{guild}:channel:{channel}"),
                _ => format!("receipt:{guild}:guild"),
            },
        }
    }

    /// A receipt's (or a choice's) subject.
    pub fn subject(&self) -> Option<Subject> {
        match (self.user_id, self.channel_id) {
            (Some(user), None) => Some(Subject::Member(user)),
            (None, Some(channel)) => Some(Subject::Channel(channel)),
            (None, None) => Some(Subject::Guild),
            (Some(_), Some(_)) => None,
        }
    }
}

impl Record for ControlRecord {
    const TOPIC: TopicKind = TopicKind::Control;

    fn validate(&self) -> Result<(), SchemaError> {
        timestamp("at", &self.at)?;
        if let Some(request_id) = &self.request_id {
            non_empty("request_id", request_id)?;
            max_chars("request_id", request_id, 100)?;
        }
        if let Some(reason) = &self.reason {
            max_chars("reason", reason, 200)?;
        }
        let needs = |field: &'static str, present: bool, kind: &str| {
            if present {
                Ok(())
            } else {
                Err(SchemaError::invalid(
                    field,
                    format!("is required for a {kind}"),
                ))
            }
        };
        match self.kind {
            ControlKind::Member => {
                needs("user_id", self.user_id.is_some(), "member")?;
                needs("indexed", self.indexed.is_some(), "member")?;
            }
            ControlKind::Channel => {
                needs("channel_id", self.channel_id.is_some(), "channel")?;
                needs("indexed", self.indexed.is_some(), "channel")?;
            }
            ControlKind::Guild => needs("indexed", self.indexed.is_some(), "guild")?,
            ControlKind::Solved => {
                needs("channel_id", self.channel_id.is_some(), "solved mark")?;
                needs("solved", self.solved.is_some(), "solved mark")?;
            }
            ControlKind::Receipt => {
                needs("request_id", self.request_id.is_some(), "receipt")?;
                needs("removed", self.removed.is_some(), "receipt")?;
                needs("done", self.done.is_some(), "receipt")?;
                if self.subject().is_none() {
                    return Err(SchemaError::invalid(
                        "channel_id",
                        "a receipt is about a member or a channel, not both",
                    ));
                }
            }
        }
        Ok(())
    }

    fn key(&self) -> String {
        self.key.clone()
    }

    fn normalize(&mut self) {
        self.key = self.derive_key();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_has_its_own_key_and_round_trips() {
        let forget = ControlRecord::member(GuildId::new(1), UserId::new(2), false)
            .requested(UserId::new(2), "77");
        assert_eq!(forget.compaction_key(), "member:1:2");
        let decoded = ControlRecord::decode(&forget.encode()).expect("decodes");
        assert_eq!(decoded, forget);
        assert_eq!(
            ControlRecord::channel(1.into(), 3.into(), false, "excluded").compaction_key(),
            "channel:1:3"
        );
        assert_eq!(
            ControlRecord::presence(1.into(), false, "removed").compaction_key(),
            "guild:1"
        );
        assert_eq!(
            ControlRecord::receipt(1.into(), Subject::Member(2.into()), "77", 5, true)
                .compaction_key(),
            "receipt:1:member:2"
        );
        assert_eq!(
            ControlRecord::receipt(1.into(), Subject::Channel(3.into()), "78", 5, false)
                .compaction_key(),
            "receipt:1:channel:3"
        );
        assert_eq!(
            ControlRecord::solved(1.into(), 3.into(), None, true).compaction_key(),
            "solved:1:3"
        );
        let marked = ControlRecord::solved(1.into(), 3.into(), Some(9.into()), true);
        assert_eq!(marked.compaction_key(), "solved:1:3:9");
        assert_eq!(
            ControlRecord::decode(&marked.encode()).expect("decodes"),
            marked
        );
    }

    #[test]
    fn incomplete_or_malformed_choices_are_refused_with_the_field() {
        for (json, field) in [
            (
                r#"{"kind":"member","guild_id":"1","at":"2025-01-01T00:00:00Z","indexed":false}"#,
                "user_id",
            ),
            (
                r#"{"kind":"member","guild_id":"1","at":"2025-01-01T00:00:00Z","user_id":"2"}"#,
                "indexed",
            ),
            (
                r#"{"kind":"channel","guild_id":"x","at":"2025-01-01T00:00:00Z","channel_id":"2","indexed":true}"#,
                "guild_id",
            ),
            (
                r#"{"kind":"receipt","guild_id":"1","at":"2025-01-01T00:00:00Z","user_id":"2","removed":1,"done":true}"#,
                "request_id",
            ),
            (
                r#"{"kind":"guild","guild_id":"1","at":"yesterday","indexed":true}"#,
                "at",
            ),
        ] {
            match ControlRecord::decode(json.as_bytes()) {
                Err(SchemaError::Invalid { field: found, .. }) => {
                    assert_eq!(found, field, "{json}")
                }
                Err(SchemaError::Json { path, .. }) => assert_eq!(path, field, "{json}"),
                other => panic!("{json}: expected an invalid {field}, got {other:?}"),
            }
        }
        assert!(ControlRecord::decode(
            br#"{"kind":"nobody","guild_id":"1","at":"2025-01-01T00:00:00Z"}"#
        )
        .is_err());
    }
}
