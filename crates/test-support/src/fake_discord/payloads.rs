//! Discord payloads as the gateway and REST API send them, for tests to push.

use serde_json::{json, Map, Value};

use super::BOT_ID;

/// A user object.
pub fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": null, "avatar": null, "bot": bot})
}

/// A MESSAGE_CREATE payload / Message object.
pub fn message(
    id: u64,
    channel_id: u64,
    guild_id: Option<u64>,
    author: Value,
    content: &str,
) -> Value {
    let mut message = json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": author,
        "content": content,
        "timestamp": "2025-11-02T12:34:56.789000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
    });
    if let Some(guild_id) = guild_id {
        message["guild_id"] = json!(guild_id.to_string());
    }
    message
}

/// [`message`] by a human `author_id`, posted now ([`message`]'s fixed timestamp is long
/// past: a catch-up after downtime asks only recent triggers).
pub fn message_now(
    id: u64,
    channel_id: u64,
    guild_id: Option<u64>,
    author_id: u64,
    content: &str,
) -> Value {
    let author = user(author_id, &format!("human{author_id}"), false);
    let mut message = message(id, channel_id, guild_id, author, content);
    message["timestamp"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false));
    message
}

/// An INTERACTION_CREATE payload for `/rtfm question:<question>`.
pub fn slash_command(
    id: u64,
    channel_id: u64,
    guild_id: u64,
    author: Value,
    question: &str,
) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": BOT_ID.to_string(),
        "type": 2,
        "data": {"id": "5000", "name": "rtfm", "type": 1, "options": [{"name": "question", "type": 3, "value": question}]},
        "guild_id": guild_id.to_string(),
        "channel_id": channel_id.to_string(),
        "member": {"user": author, "roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": "0"},
        "token": format!("interaction-token-{id}"),
        "version": 1,
        "app_permissions": "0",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "context": 0,
        "attachment_size_limit": 26214400,
    })
}

/// A channel permission overwrite for a role (the guild's id is `@everyone`), as Discord
/// sends it: permissions as decimal strings.
pub fn role_overwrite(role_id: u64, allow: u64, deny: u64) -> Value {
    json!({"id": role_id.to_string(), "type": 0, "allow": allow.to_string(), "deny": deny.to_string()})
}

/// A slash command invocation besides who and where: which command and subcommand, its
/// options (name → value), and the member's permissions in the channel.
#[derive(Debug, Clone, Default)]
pub struct Invoked {
    pub command: String,
    pub subcommand: Option<String>,
    pub options: Map<String, Value>,
    pub permissions: u64,
}

/// An option as Discord sends it: its type from its value (`channel` is a channel option).
fn option_of(name: &str, value: &Value) -> Value {
    let kind = match value {
        _ if name == "channel" => 7,
        Value::Bool(_) => 5,
        Value::Number(number) if number.is_i64() || number.is_u64() => 4,
        Value::Number(_) => 10,
        _ => 3,
    };
    let value = match value {
        Value::Number(number) if kind == 7 => json!(number.to_string()),
        other => other.clone(),
    };
    json!({"name": name, "type": kind, "value": value})
}

/// An INTERACTION_CREATE payload for any slash command (`guild_id` `None`: in a DM, where
/// Discord sends `user` instead of `member`).
pub fn command_interaction(
    id: u64,
    channel_id: u64,
    guild_id: Option<u64>,
    author: Value,
    invoked: &Invoked,
) -> Value {
    let options: Vec<Value> = invoked
        .options
        .iter()
        .map(|(name, value)| option_of(name, value))
        .collect();
    let mut resolved = Map::new();
    for option in &options {
        if option["type"] == 7 {
            let channel = option["value"].as_str().unwrap_or_default().to_string();
            resolved.insert(
                channel.clone(),
                json!({"id": channel, "name": format!("channel-{channel}"), "type": 0, "permissions": "0"}),
            );
        }
    }
    let options = match &invoked.subcommand {
        Some(sub) => vec![json!({"name": sub, "type": 1, "options": options})],
        None => options,
    };
    let mut data = json!({"id": "5000", "name": invoked.command, "type": 1, "options": options});
    if !resolved.is_empty() {
        data["resolved"] = json!({"channels": resolved});
    }
    let mut interaction = json!({
        "id": id.to_string(),
        "application_id": BOT_ID.to_string(),
        "type": 2,
        "data": data,
        "channel_id": channel_id.to_string(),
        "token": format!("interaction-token-{id}"),
        "version": 1,
        "app_permissions": "0",
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "attachment_size_limit": 26214400,
    });
    match guild_id {
        Some(guild_id) => {
            interaction["guild_id"] = json!(guild_id.to_string());
            interaction["guild_locale"] = json!("en-US");
            interaction["context"] = json!(0);
            interaction["member"] = json!({"user": author, "roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": invoked.permissions.to_string()});
        }
        None => {
            interaction["context"] = json!(1);
            interaction["user"] = author;
        }
    }
    interaction
}

/// A GUILD_CREATE payload: the guild object with the event's extra fields, empty lists.
pub fn guild_create(guild_id: u64) -> Value {
    let mut guild = json!({
        "id": guild_id.to_string(), "name": format!("guild-{guild_id}"), "icon": null,
        "icon_hash": null, "splash": null, "discovery_splash": null, "owner_id": "1",
        "afk_channel_id": null, "afk_timeout": 300, "widget_enabled": false,
        "widget_channel_id": null, "verification_level": 0, "default_message_notifications": 0,
        "explicit_content_filter": 0, "roles": [], "emojis": [], "features": [], "mfa_level": 0,
        "application_id": null, "system_channel_id": null, "system_channel_flags": 0,
        "rules_channel_id": null, "max_presences": null, "max_members": 500000,
    });
    let more = json!({
        "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
        "premium_subscription_count": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": null, "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50, "nsfw_level": 0, "stickers": [],
        "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
    });
    let event = json!({
        "joined_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        "large": false, "unavailable": false, "member_count": 2, "voice_states": [],
        "members": [], "channels": [], "threads": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [],
    });
    for extra in [more, event] {
        if let (Some(guild), Value::Object(extra)) = (guild.as_object_mut(), extra) {
            guild.extend(extra);
        }
    }
    guild
}
