//! The control API: drive the fake over HTTP (the `fake-discord` binary, outside checks).

use super::*;

#[derive(serde::Deserialize)]
pub(super) struct NewMessage {
    channel_id: String,
    guild_id: Option<String>,
    author_id: String,
    username: String,
    content: String,
    reply_to_message_id: Option<String>,
}

fn parse_id(raw: &str, field: &str) -> Result<u64, String> {
    raw.parse()
        .map_err(|_| format!("{field} must be a string of digits"))
}

fn parse_optional(raw: Option<&str>, field: &str) -> Result<Option<u64>, String> {
    raw.map(|raw| parse_id(raw, field)).transpose()
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

pub(super) async fn post_message(
    State(fake): State<FakeDiscord>,
    Json(new): Json<NewMessage>,
) -> Response {
    let ids = (|| {
        Ok::<_, String>((
            parse_id(&new.channel_id, "channel_id")?,
            parse_optional(new.guild_id.as_deref(), "guild_id")?,
            parse_id(&new.author_id, "author_id")?,
            parse_optional(new.reply_to_message_id.as_deref(), "reply_to_message_id")?,
        ))
    })();
    let (channel, guild, author, reply_to) = match ids {
        Ok(ids) => ids,
        Err(error) => return bad_request(error),
    };
    let id = fake.next_message_id();
    let mut payload = message(
        id,
        channel,
        guild,
        user(author, &new.username, false),
        &new.content,
    );
    if let Some(reply_to) = reply_to {
        payload["type"] = json!(19);
        payload["message_reference"] =
            json!({"message_id": reply_to.to_string(), "channel_id": channel.to_string()});
    }
    fake.push_message(payload);
    Json(json!({"message_id": id.to_string()})).into_response()
}

/// `POST /_fake/interactions`: `question` alone is the ask command (in the form the bot
/// registered it: `/rtfm ask question:` when it has that subcommand, else `/rtfm question:`);
/// `command` (default `rtfm`), `subcommand`, `options` (name → value) and `permissions` (the
/// member's permission integer, a decimal string) invoke any command. No `guild_id`: a DM.
#[derive(serde::Deserialize)]
pub(super) struct NewInteraction {
    channel_id: String,
    guild_id: Option<String>,
    user_id: String,
    username: String,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    subcommand: Option<String>,
    #[serde(default)]
    options: serde_json::Map<String, Value>,
    #[serde(default)]
    permissions: Option<String>,
}

/// Whether the bot registered `/rtfm` with an `ask` subcommand (globally or in `guild`).
fn registered_ask(inner: &Inner, guild: Option<u64>) -> bool {
    let has_ask = |commands: &Vec<Value>| {
        commands.iter().any(|command| {
            command["name"] == "rtfm"
                && command["options"].as_array().is_some_and(|options| {
                    options
                        .iter()
                        .any(|option| option["name"] == "ask" && option["type"] == 1)
                })
        })
    };
    has_ask(&inner.commands)
        || guild
            .and_then(|guild| inner.guild_commands.get(&guild))
            .is_some_and(has_ask)
}

pub(super) async fn post_interaction(
    State(fake): State<FakeDiscord>,
    Json(new): Json<NewInteraction>,
) -> Response {
    let ids = (|| {
        Ok::<_, String>((
            parse_id(&new.channel_id, "channel_id")?,
            parse_optional(new.guild_id.as_deref(), "guild_id")?,
            parse_id(&new.user_id, "user_id")?,
            parse_optional(new.permissions.as_deref(), "permissions")?.unwrap_or(0),
        ))
    })();
    let (channel, guild, user_id, permissions) = match ids {
        Ok(ids) => ids,
        Err(error) => return bad_request(error),
    };
    let mut invoked = payloads::Invoked {
        command: new.command.unwrap_or_else(|| "rtfm".to_string()),
        subcommand: new.subcommand,
        options: new.options,
        permissions,
    };
    {
        let mut inner = fake.lock();
        inner
            .channels
            .entry(channel)
            .or_insert_with(|| (guild, format!("channel-{channel}")));
        if let (None, Some(question)) = (&invoked.subcommand, new.question) {
            if registered_ask(&inner, guild) {
                invoked.subcommand = Some("ask".to_string());
            }
            invoked
                .options
                .insert("question".to_string(), Value::String(question));
        }
    }
    let id = fake.next_message_id();
    let interaction = payloads::command_interaction(
        id,
        channel,
        guild,
        user(user_id, &new.username, false),
        &invoked,
    );
    let token = interaction["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    fake.push_interaction(interaction);
    Json(json!({"interaction_id": id.to_string(), "token": token})).into_response()
}

pub(super) async fn get_posts(State(fake): State<FakeDiscord>) -> Json<Value> {
    Json(Value::Array(
        fake.attempts().iter().map(Posted::to_json).collect(),
    ))
}

pub(super) async fn get_ready(State(fake): State<FakeDiscord>) -> StatusCode {
    if fake.identifies() > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
