//! The REST routes under `/api/v10` the bot uses, as strict as Discord where it matters.

use std::sync::MutexGuard;

use super::*;

pub(super) async fn gateway_url(State(fake): State<FakeDiscord>) -> Json<Value> {
    Json(json!({"url": format!("ws://{}/gateway", fake.addr)}))
}

pub(super) async fn gateway_bot(State(fake): State<FakeDiscord>) -> Json<Value> {
    Json(json!({
        "url": format!("ws://{}/gateway", fake.addr),
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
    }))
}

/// Refuses a REST call without the bot's token (see the module doc, "Authentication").
pub(super) async fn require_bot_token(
    State(fake): State<FakeDiscord>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let open = !path.starts_with("/api/v10/")
        || path == "/api/v10/gateway"
        || path.starts_with("/api/v10/interactions/")
        || path.starts_with("/api/v10/webhooks/");
    if !open {
        let authorization = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let mut inner = fake.lock();
        if !inner.options.accepts(authorization) {
            inner.unauthorized += 1;
            return error_response(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }
    next.run(request).await
}

pub(super) fn error_response(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

pub(super) fn failure_response(failure: Failure) -> Response {
    match failure {
        Failure::CreatedThenHang(_) => error_response(StatusCode::GATEWAY_TIMEOUT, 0, "fake failure"),
        Failure::Status(status) | Failure::CreatedThen(status) => error_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            0,
            "fake failure",
        ),
        Failure::RateLimited(after) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", format!("{after}"))],
            Json(json!({"code": 0, "message": "You are being rate limited.", "retry_after": after, "global": false})),
        )
            .into_response(),
    }
}

/// A numeric id field that Discord sends as a string.
pub(super) fn id_field(value: &Value, key: &str) -> u64 {
    value[key]
        .as_str()
        .and_then(|id| id.parse().ok())
        .or_else(|| value[key].as_u64())
        .unwrap_or_default()
}

/// Takes one request from `bucket` (and from the global limit) when rate limits are on: the
/// headers to answer with, or the 429 to answer instead (see [`super::RateLimits`]).
pub(super) fn take_token(
    inner: &mut Inner,
    bucket: &str,
) -> Result<Vec<(&'static str, String)>, Box<Response>> {
    let Some(limits) = inner.options.rate_limits else {
        return Ok(Vec::new());
    };
    let now = Instant::now();
    let second = std::time::Duration::from_secs(1);
    let (started, count) = match inner.global_window {
        Some((started, count)) if now.duration_since(started) < second => (started, count),
        _ => (now, 0),
    };
    if count >= limits.global_per_second {
        inner.rate_limited.1 += 1;
        let retry = (second - now.duration_since(started)).as_secs_f64();
        return Err(Box::new((
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after", format!("{retry:.3}")),
                ("x-ratelimit-global", "true".to_string()),
                ("x-ratelimit-scope", "global".to_string()),
            ],
            Json(json!({"message": "You are being rate limited.", "retry_after": retry, "global": true})),
        )
            .into_response()));
    }
    let entry = inner
        .buckets
        .entry(bucket.to_string())
        .or_insert((now + limits.window, 0));
    if now >= entry.0 {
        *entry = (now + limits.window, 0);
    }
    let reset_after = entry.0.duration_since(now).as_secs_f64();
    let reset_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64() + reset_after)
        .unwrap_or_default();
    let limit = limits.per_route;
    let headers = |remaining: u32| {
        vec![
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", format!("{reset_at:.3}")),
            ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
            ("x-ratelimit-bucket", format!("fake-{bucket}")),
        ]
    };
    if entry.1 >= limit {
        inner.rate_limited.0 += 1;
        let mut answer = headers(0);
        answer.push(("retry-after", format!("{reset_after:.3}")));
        answer.push(("x-ratelimit-scope", "user".to_string()));
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false})),
        )
            .into_response();
        add_headers(&mut response, answer);
        return Err(Box::new(response));
    }
    entry.1 += 1;
    let remaining = limit - entry.1;
    inner.global_window = Some((started, count + 1));
    Ok(headers(remaining))
}

/// The answer to a call that created `created`: the message, or (injected) an error status
/// although it was created — at once, or after holding the answer back; with the rate-limit
/// headers.
pub(super) fn created_answer(
    created: Value,
    created_then: Option<Failure>,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let mut response = match created_then {
        Some(Failure::CreatedThenHang(hang)) => {
            let mut response = failure_response(Failure::Status(504));
            response.extensions_mut().insert(HoldBack(hang));
            response
        }
        Some(failure) => failure_response(failure),
        None => Json(created).into_response(),
    };
    add_headers(&mut response, headers);
    response
}

/// An answer to hold back this long before sending it ([`Failure::CreatedThenHang`]).
#[derive(Debug, Clone, Copy)]
struct HoldBack(std::time::Duration);

/// Sends a held-back answer late (the handlers hold the fake's lock, so they cannot wait).
pub(super) async fn hold_back(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(HoldBack(hang)) = response.extensions().get::<HoldBack>().copied() {
        tokio::time::sleep(hang).await;
    }
    response
}

/// Adds `headers` to `response`.
pub(super) fn add_headers(response: &mut Response, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

pub(super) async fn create_message(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refusal) = content_refusal(&body) {
        return refusal;
    }
    let mut inner = fake.lock();
    let rate_headers = match take_token(&mut inner, &format!("messages-{channel}")) {
        Ok(headers) => headers,
        Err(limited) => return *limited,
    };
    inner.creates += 1;
    let periodic = inner
        .periodic_failure
        .filter(|(n, _)| inner.creates % n == 0)
        .map(|(_, failure)| failure);
    let injected = inner.failures.pop_front().or(periodic);
    let created_then = match injected {
        Some(failure @ (Failure::CreatedThen(_) | Failure::CreatedThenHang(_))) => Some(failure),
        Some(failure) => return failure_response(failure),
        None => None,
    };
    if let Some(after) = inner.limited_channels.get(&channel).copied() {
        return failure_response(Failure::RateLimited(after));
    }
    match inner.refused_channels.get(&channel) {
        Some(403) => return error_response(StatusCode::FORBIDDEN, 50001, "Missing Access"),
        Some(_) => return error_response(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
        None => {}
    }
    let Some(guild) = inner.channels.get(&channel).map(|(guild, _)| *guild) else {
        return error_response(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    // A reply to a message that is not in the channel (deleted, unknown): Discord posts it
    // without the reference when `fail_if_not_exists` is false, and refuses it otherwise (the
    // default is true): 400, code 50035, `message_reference` → REPLIES_UNKNOWN_MESSAGE.
    let mut reference = body
        .get("message_reference")
        .filter(|reference| !reference.is_null())
        .cloned();
    if let Some(referenced) = reference.as_ref().map(|r| id_field(r, "message_id")) {
        let exists = inner
            .history
            .get(&channel)
            .is_some_and(|messages| messages.iter().any(|m| id_field(m, "id") == referenced));
        if !exists {
            if reference
                .as_ref()
                .is_some_and(|r| r["fail_if_not_exists"] == json!(false))
            {
                reference = None;
            } else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"code": 50035, "message": "Invalid Form Body",
                        "errors": {"message_reference": {"_errors": [{
                            "code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]}}})),
                )
                    .into_response();
            }
        }
    }
    let nonce = body["nonce"].as_str().map(str::to_string);
    let window = inner.options.nonce_window;
    if body["enforce_nonce"] == json!(true) {
        let recent = nonce
            .as_ref()
            .and_then(|nonce| inner.nonces.get(nonce))
            .filter(|(created, _)| created.elapsed() < window)
            .map(|(_, message)| message.clone());
        if let Some(existing) = recent {
            // Discord returns the earlier message instead of creating a duplicate; the attempt
            // is still recorded, so a test sees that the bot tried.
            inner.posts.push(Posted {
                deduplicated: true,
                ..Posted::message(channel, id_field(&existing, "id"), body)
            });
            let mut response = Json(existing).into_response();
            add_headers(&mut response, rate_headers);
            return response;
        }
    }
    let (id, mut created) = new_bot_message(&mut inner, channel, guild, &body);
    if let Some(reference) = &reference {
        created["message_reference"] = json!({
            "message_id": reference["message_id"].clone(),
            "channel_id": channel.to_string(),
        });
        created["type"] = json!(19);
    }
    if let Some(nonce) = &nonce {
        created["nonce"] = json!(nonce);
        inner
            .nonces
            .insert(nonce.clone(), (Instant::now(), created.clone()));
    }
    record_created(
        &mut inner,
        Posted::message(channel, id, body),
        &created,
        true,
    );
    created_answer(created, created_then, rate_headers)
}

/// Discord's limit on `content` (Create Message, and follow-ups alike): at most 2 000
/// characters, else 400 with code 50035 Invalid Form Body (`BASE_TYPE_MAX_LENGTH`).
pub(super) fn content_refusal(body: &Value) -> Option<Response> {
    let length = body["content"].as_str()?.chars().count();
    (length > 2000).then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "code": 50035,
                "message": "Invalid Form Body",
                "errors": {"content": {"_errors": [{
                    "code": "BASE_TYPE_MAX_LENGTH",
                    "message": "Must be 2000 or fewer in length."
                }]}}
            })),
        )
            .into_response()
    })
}

/// A new message of the bot's in `channel` with `body`'s content, under the fake's next id.
pub(super) fn new_bot_message(
    inner: &mut Inner,
    channel: u64,
    guild: Option<u64>,
    body: &Value,
) -> (u64, Value) {
    inner.next_id += 1;
    let id = inner.next_id;
    let created = message(
        id,
        channel,
        guild,
        user(BOT_ID, "rtfm", true),
        body["content"].as_str().unwrap_or_default(),
    );
    (id, created)
}

/// Records a message the bot created: in the list of posts and, unless only its author sees
/// it, in its channel's history.
pub(super) fn record_created(inner: &mut Inner, post: Posted, created: &Value, in_history: bool) {
    if in_history {
        inner
            .history
            .entry(post.channel_id)
            .or_default()
            .push(created.clone());
    }
    inner.posts.push(post);
}

pub(super) async fn get_channel(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
) -> Response {
    let inner = fake.lock();
    match inner.channels.get(&channel) {
        Some((Some(guild), name)) => Json(guild_channel_json(&inner, channel, *guild, name)).into_response(),
        Some((None, _)) => Json(json!({"id": channel.to_string(), "type": 1, "recipients": [user(4242, "someone", false)], "last_message_id": null})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"code": 10003, "message": "Unknown Channel"}))).into_response(),
    }
}

/// `GET /channels/{id}/messages/{id}`: one message, with `referenced_message` (the message it
/// replies to, or null) as Discord includes it for replies; 404 Unknown Message (10008).
pub(super) async fn get_message(
    State(fake): State<FakeDiscord>,
    Path((channel, message)): Path<(u64, u64)>,
) -> Response {
    let inner = fake.lock();
    let history = inner.history.get(&channel);
    let find = |id: u64| {
        history.and_then(|messages| messages.iter().find(|m| id_field(m, "id") == id).cloned())
    };
    let Some(mut found) = find(message) else {
        return error_response(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    if let Some(reference) = found["message_reference"]["message_id"]
        .as_str()
        .and_then(|id| id.parse::<u64>().ok())
    {
        found["referenced_message"] = find(reference).unwrap_or(Value::Null);
    }
    Json(found).into_response()
}

/// Discord's answer about a guild the bot is not in.
pub(super) fn unknown_guild() -> Response {
    error_response(StatusCode::NOT_FOUND, 10004, "Unknown Guild")
}

/// Counts a guild lookup; the fake's state if the bot is in `guild` (the fake knows a channel
/// of it), else `None` (Discord answers `Unknown Guild`).
pub(super) fn guild_lookup(fake: &FakeDiscord, guild: u64) -> Option<MutexGuard<'_, Inner>> {
    let mut inner = fake.lock();
    inner.guild_lookups += 1;
    let member = inner
        .channels
        .values()
        .any(|(in_guild, _)| *in_guild == Some(guild))
        && !inner.left_guilds.contains(&guild);
    member.then_some(inner)
}

/// `GET /guilds/{id}/roles`: the `@everyone` role (id = the guild's).
pub(super) async fn guild_roles(
    State(fake): State<FakeDiscord>,
    Path(guild): Path<u64>,
) -> Response {
    let Some(inner) = guild_lookup(&fake, guild) else {
        return unknown_guild();
    };
    let permissions = inner
        .everyone_permissions
        .get(&guild)
        .copied()
        .unwrap_or(DEFAULT_EVERYONE_PERMISSIONS);
    Json(json!([{
        "id": guild.to_string(), "name": "@everyone", "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false, "icon": null, "unicode_emoji": null, "position": 0,
        "permissions": permissions.to_string(), "managed": false, "mentionable": false,
        "flags": 0
    }]))
    .into_response()
}

pub(super) async fn current_user() -> Json<Value> {
    Json(user(BOT_ID, "rtfm", true))
}

pub(super) async fn typing(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
) -> StatusCode {
    fake.lock().typing.push(channel);
    StatusCode::NO_CONTENT
}

pub(super) async fn unknown(State(fake): State<FakeDiscord>, uri: Uri) -> StatusCode {
    fake.lock().unknown_routes.push(uri.to_string());
    StatusCode::NOT_FOUND
}
