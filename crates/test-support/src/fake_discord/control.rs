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
            new.guild_id
                .as_deref()
                .map(|guild| parse_id(guild, "guild_id"))
                .transpose()?,
            parse_id(&new.author_id, "author_id")?,
            new.reply_to_message_id
                .as_deref()
                .map(|id| parse_id(id, "reply_to_message_id"))
                .transpose()?,
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

#[derive(serde::Deserialize)]
pub(super) struct NewInteraction {
    channel_id: String,
    guild_id: String,
    user_id: String,
    username: String,
    question: String,
}

pub(super) async fn post_interaction(
    State(fake): State<FakeDiscord>,
    Json(new): Json<NewInteraction>,
) -> Response {
    let ids = (|| {
        Ok::<_, String>((
            parse_id(&new.channel_id, "channel_id")?,
            parse_id(&new.guild_id, "guild_id")?,
            parse_id(&new.user_id, "user_id")?,
        ))
    })();
    let (channel, guild, user_id) = match ids {
        Ok(ids) => ids,
        Err(error) => return bad_request(error),
    };
    {
        let mut inner = fake.lock();
        inner
            .channels
            .entry(channel)
            .or_insert_with(|| (Some(guild), format!("channel-{channel}")));
    }
    let id = fake.next_message_id();
    let interaction = slash_command(
        id,
        channel,
        guild,
        user(user_id, &new.username, false),
        &new.question,
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
