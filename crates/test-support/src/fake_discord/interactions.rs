//! Interaction responses and follow-ups, with Discord's rules for acknowledgement windows,
//! deferrals and visibility (see the module documentation of `fake_discord`).

use super::rest::{
    created_answer, error_response, failure_response, new_bot_message, record_created, take_token,
};
use super::*;

pub(super) async fn interaction_callback(
    State(fake): State<FakeDiscord>,
    Path((id, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    let window = inner.options.ack_window;
    let Some((_, channel, _)) = inner
        .tokens
        .get(&token)
        .filter(|(interaction, _, issued)| *interaction == id && issued.elapsed() < window)
        .copied()
    else {
        // Unknown, or not answered within 3 s: Discord has forgotten it.
        return error_response(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    if inner.acks.contains_key(&token) {
        return error_response(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    let ephemeral = body["data"]["flags"]
        .as_u64()
        .is_some_and(|flags| flags & 64 != 0);
    let deferred = body["type"].as_u64() == Some(5);
    inner.acks.insert(
        token.clone(),
        Ack {
            deferred,
            ephemeral,
            replaced: false,
        },
    );
    if !deferred {
        inner.posts.push(Posted {
            kind: PostKind::Response,
            interaction_token: Some(token),
            interaction_id: Some(id),
            ephemeral,
            ..Posted::message(channel, 0, body["data"].clone())
        });
    }
    if !deferred && !ephemeral {
        // An immediate public answer is a message in the channel.
        inner.next_id += 1;
        let message_id = inner.next_id;
        let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
        let mut created = message(
            message_id,
            channel,
            guild,
            user(BOT_ID, "rtfm", true),
            body["data"]["content"].as_str().unwrap_or_default(),
        );
        created["interaction_metadata"] = json!({"id": id.to_string(), "type": 2,
            "user": user(4242, "asker", false), "authorizing_integration_owners": {}});
        inner.history.entry(channel).or_default().push(created);
    }
    inner.callbacks.push((id, body));
    StatusCode::NO_CONTENT.into_response()
}

/// What Discord checks first on a webhook call with an interaction token: the token lives (its
/// 15 minutes: else 401 50027) and the content fits (else 400 50035). The interaction and its
/// channel, and how it was acknowledged (no acknowledgement yet: 404 10015 Unknown Webhook).
fn webhook_call(
    inner: &Inner,
    token: &str,
    body: &Value,
) -> Result<(u64, u64, Ack), Box<Response>> {
    let ttl = inner.options.token_ttl;
    let Some((interaction, channel, _)) = inner
        .tokens
        .get(token)
        .filter(|(_, _, issued)| issued.elapsed() < ttl)
        .copied()
    else {
        return Err(Box::new(error_response(
            StatusCode::UNAUTHORIZED,
            50027,
            "Invalid Webhook Token",
        )));
    };
    if let Some(refusal) = content_refusal(body) {
        return Err(Box::new(refusal));
    }
    let Some(ack) = inner.acks.get(token).copied() else {
        return Err(Box::new(error_response(
            StatusCode::NOT_FOUND,
            10015,
            "Unknown Webhook",
        )));
    };
    Ok((interaction, channel, ack))
}

pub(super) async fn followup(
    State(fake): State<FakeDiscord>,
    Path((_app, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    let (interaction, channel, ack) = match webhook_call(&inner, &token, &body) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let rate_headers = match take_token(&mut inner, &format!("webhook-{interaction}")) {
        Ok(headers) => headers,
        Err(limited) => return *limited,
    };
    let created_then = match inner.failures.pop_front() {
        Some(failure @ (Failure::CreatedThen(_) | Failure::CreatedThenHang(_))) => Some(failure),
        Some(failure) => return failure_response(failure),
        None => None,
    };
    // The first follow-up of a deferred response replaces "thinking…" and keeps its
    // visibility; later ones (and those after an immediate response) have their own.
    let ephemeral = if ack.deferred && !ack.replaced {
        if let Some(ack) = inner.acks.get_mut(&token) {
            ack.replaced = true;
        }
        ack.ephemeral
    } else {
        body["flags"].as_u64().is_some_and(|flags| flags & 64 != 0)
    };
    let interaction_user = 4242u64;
    let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
    let (id, mut created) = new_bot_message(&mut inner, channel, guild, &body);
    created["webhook_id"] = json!(BOT_ID.to_string());
    created["interaction_metadata"] = json!({
        "id": interaction.to_string(),
        "type": 2,
        "user": user(interaction_user, "asker", false),
        "authorizing_integration_owners": {},
    });
    // An ephemeral follow-up is seen only by the asker: not in the channel.
    record_created(
        &mut inner,
        Posted {
            kind: PostKind::Followup,
            interaction_token: Some(token),
            interaction_id: Some(interaction),
            ephemeral,
            ..Posted::message(channel, id, body)
        },
        &created,
        !ephemeral,
    );
    created_answer(created, created_then, rate_headers)
}

/// `PATCH /webhooks/{app}/{token}/messages/@original`: edits the response (a deferred one's
/// "thinking…" included), keeping its visibility. Discord answers 404 Unknown Webhook for a
/// token with no response yet, and 401 once the token's 15 minutes are over.
pub(super) async fn edit_original(
    State(fake): State<FakeDiscord>,
    Path((_app, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    let (interaction, channel, ack) = match webhook_call(&inner, &token, &body) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    if let Some(ack) = inner.acks.get_mut(&token) {
        ack.replaced = true;
    }
    let ephemeral = ack.ephemeral;
    let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
    let (id, mut edited) = new_bot_message(&mut inner, channel, guild, &body);
    edited["webhook_id"] = json!(BOT_ID.to_string());
    inner.posts.push(Posted {
        kind: PostKind::Edit,
        interaction_token: Some(token),
        interaction_id: Some(interaction),
        ephemeral,
        ..Posted::message(channel, id, body)
    });
    Json(edited).into_response()
}
