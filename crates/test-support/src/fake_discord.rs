//! A fake Discord: the REST routes the bot uses under `/api/v10` and a gateway websocket, on one
//! local port. It records what the bot sends and lets a test push gateway events.
//!
//! Point serenity at it with `HttpBuilder::proxy(base_url)` + `ratelimiter_disabled(true)`
//! (the bot's `DISCORD_API_URL`); serenity then asks `GET /api/v10/gateway` for the websocket.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// The bot's own user id and application id in the fake.
pub const BOT_ID: u64 = 1000;

/// A message the bot posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel_id: u64,
    pub body: Value,
    /// When the fake received it (for latency benchmarks).
    pub at: std::time::Instant,
}

impl Posted {
    pub fn content(&self) -> &str {
        self.body["content"].as_str().unwrap_or_default()
    }

    pub fn reply_to(&self) -> Option<u64> {
        self.body["message_reference"]["message_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .or_else(|| self.body["message_reference"]["message_id"].as_u64())
    }
}

/// What the next `POST …/messages` gets instead of success.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Status(u16),
    /// 429 with `retry_after` seconds in the body.
    RateLimited(f64),
}

#[derive(Debug, Clone)]
enum GatewayCommand {
    Dispatch(&'static str, Value),
    Reconnect,
}

#[derive(Default)]
struct Inner {
    posts: Vec<Posted>,
    followups: Vec<Value>,
    callbacks: Vec<(u64, Value)>,
    commands: Vec<Value>,
    typing: Vec<u64>,
    failures: VecDeque<Failure>,
    history_failures_after: Option<usize>,
    history_requests: usize,
    nonces: HashMap<String, Value>,
    history: HashMap<u64, Vec<Value>>,
    channels: HashMap<u64, (Option<u64>, String)>,
    identifies: usize,
    resumes: usize,
    next_id: u64,
    unknown_routes: Vec<String>,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    gateway: broadcast::Sender<GatewayCommand>,
    sequence: Arc<Mutex<u64>>,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake discord");
        let addr = listener.local_addr().expect("addr");
        let (gateway, _) = broadcast::channel(1024);
        let fake = Self {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                next_id: 900_000_000_000_000_000,
                ..Default::default()
            })),
            gateway,
            sequence: Arc::new(Mutex::new(1)),
        };
        let app = Router::new()
            .route("/api/v10/gateway", get(gateway_url))
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .route(
                "/api/v10/applications/{app}/commands",
                put(register_commands),
            )
            .route(
                "/api/v10/channels/{channel}/messages",
                post(create_message).get(channel_history),
            )
            .route("/api/v10/channels/{channel}/typing", post(typing))
            .route("/api/v10/channels/{channel}", get(get_channel))
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(interaction_callback),
            )
            .route("/api/v10/webhooks/{app}/{token}", post(followup))
            .route("/gateway", get(gateway_socket))
            .fallback(unknown)
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// For `DISCORD_API_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn posts(&self) -> Vec<Posted> {
        self.lock().posts.clone()
    }

    pub fn followups(&self) -> Vec<Value> {
        self.lock().followups.clone()
    }

    /// (interaction id, body) of every interaction response.
    pub fn callbacks(&self) -> Vec<(u64, Value)> {
        self.lock().callbacks.clone()
    }

    pub fn commands(&self) -> Vec<Value> {
        self.lock().commands.clone()
    }

    pub fn typing(&self) -> Vec<u64> {
        self.lock().typing.clone()
    }

    pub fn identifies(&self) -> usize {
        self.lock().identifies
    }

    pub fn resumes(&self) -> usize {
        self.lock().resumes
    }

    pub fn unknown_routes(&self) -> Vec<String> {
        self.lock().unknown_routes.clone()
    }

    /// The next `POST …/messages` calls fail like this, in order.
    pub fn fail_next_posts(&self, failures: &[Failure]) {
        self.lock().failures.extend(failures.iter().copied());
    }

    /// After `pages` successful history pages, history requests get 403 (an interruption).
    pub fn fail_history_after(&self, pages: Option<usize>) {
        let mut inner = self.lock();
        inner.history_failures_after = pages;
        inner.history_requests = 0;
    }

    pub fn add_channel(&self, channel_id: u64, guild_id: Option<u64>, name: &str) {
        self.lock()
            .channels
            .insert(channel_id, (guild_id, name.to_string()));
    }

    /// Stores history served by `GET /channels/{id}/messages`.
    pub fn add_history(&self, channel_id: u64, messages: Vec<Value>) {
        self.lock()
            .history
            .entry(channel_id)
            .or_default()
            .extend(messages);
    }

    fn next_sequence(&self) -> u64 {
        let mut sequence = self
            .sequence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *sequence += 1;
        *sequence
    }

    fn dispatch(&self, event: &'static str, data: Value) {
        let _ = self.gateway.send(GatewayCommand::Dispatch(event, data));
    }

    pub fn push_message(&self, message: Value) {
        self.dispatch("MESSAGE_CREATE", message);
    }

    pub fn push_update(&self, message: Value) {
        self.dispatch("MESSAGE_UPDATE", message);
    }

    pub fn push_delete(&self, id: u64, channel_id: u64, guild_id: Option<u64>) {
        let mut data = json!({"id": id.to_string(), "channel_id": channel_id.to_string()});
        if let Some(guild_id) = guild_id {
            data["guild_id"] = json!(guild_id.to_string());
        }
        self.dispatch("MESSAGE_DELETE", data);
    }

    pub fn push_delete_bulk(&self, ids: &[u64], channel_id: u64, guild_id: Option<u64>) {
        let mut data = json!({"ids": ids.iter().map(u64::to_string).collect::<Vec<_>>(), "channel_id": channel_id.to_string()});
        if let Some(guild_id) = guild_id {
            data["guild_id"] = json!(guild_id.to_string());
        }
        self.dispatch("MESSAGE_DELETE_BULK", data);
    }

    pub fn push_interaction(&self, interaction: Value) {
        self.dispatch("INTERACTION_CREATE", interaction);
    }

    /// Sends op 7: the client reconnects and resumes.
    pub fn request_reconnect(&self) {
        let _ = self.gateway.send(GatewayCommand::Reconnect);
    }
}

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

async fn gateway_url(State(fake): State<FakeDiscord>) -> Json<Value> {
    Json(json!({"url": format!("ws://{}/gateway", fake.addr)}))
}

async fn gateway_bot(State(fake): State<FakeDiscord>) -> Json<Value> {
    Json(json!({
        "url": format!("ws://{}/gateway", fake.addr),
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
    }))
}

async fn register_commands(
    State(fake): State<FakeDiscord>,
    Json(commands): Json<Value>,
) -> Json<Value> {
    let registered: Vec<Value> = commands
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, mut command)| {
            command["id"] = json!((5000 + index).to_string());
            command["application_id"] = json!(BOT_ID.to_string());
            command["version"] = json!("1");
            command["type"] = json!(1);
            command["default_member_permissions"] = Value::Null;
            command
        })
        .collect();
    fake.lock().commands = registered.clone();
    Json(Value::Array(registered))
}

async fn create_message(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    if let Some(failure) = inner.failures.pop_front() {
        return match failure {
            Failure::Status(status) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({"code": 0, "message": "fake failure"})),
            )
                .into_response(),
            Failure::RateLimited(after) => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", format!("{after}"))],
                Json(json!({"code": 0, "message": "You are being rate limited.", "retry_after": after, "global": false})),
            )
                .into_response(),
        };
    }
    let nonce = body["nonce"].as_str().map(str::to_string);
    if body["enforce_nonce"] == json!(true) {
        if let Some(existing) = nonce.as_ref().and_then(|nonce| inner.nonces.get(nonce)) {
            // Discord returns the earlier message instead of creating a duplicate.
            return Json(existing.clone()).into_response();
        }
    }
    inner.next_id += 1;
    let id = inner.next_id;
    let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
    let mut created = message(
        id,
        channel,
        guild,
        user(BOT_ID, "rtfm", true),
        body["content"].as_str().unwrap_or_default(),
    );
    if let Some(nonce) = &nonce {
        created["nonce"] = json!(nonce);
        inner.nonces.insert(nonce.clone(), created.clone());
    }
    inner.posts.push(Posted {
        channel_id: channel,
        body,
        at: std::time::Instant::now(),
    });
    Json(created).into_response()
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

async fn channel_history(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let mut inner = fake.lock();
    inner.history_requests += 1;
    if inner
        .history_failures_after
        .is_some_and(|pages| inner.history_requests > pages)
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"code": 50001, "message": "Missing Access"})),
        )
            .into_response();
    }
    let mut messages: Vec<Value> = inner
        .history
        .get(&channel)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|message| {
            let id: u64 = message["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_default();
            query.before.is_none_or(|before| id < before)
        })
        .collect();
    let id_of = |message: &Value| -> u64 {
        message["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default()
    };
    messages.sort_by_key(|message| std::cmp::Reverse(id_of(message)));
    messages.truncate(query.limit.unwrap_or(50).min(100));
    Json(Value::Array(messages)).into_response()
}

async fn get_channel(State(fake): State<FakeDiscord>, Path(channel): Path<u64>) -> Response {
    let known = fake.lock().channels.get(&channel).cloned();
    match known {
        Some((Some(guild), name)) => Json(json!({
            "id": channel.to_string(), "type": 0, "guild_id": guild.to_string(), "name": name,
            "position": 0, "permission_overwrites": [], "nsfw": false, "rate_limit_per_user": 0,
            "parent_id": null, "last_message_id": null, "topic": null
        }))
        .into_response(),
        Some((None, _)) => Json(json!({"id": channel.to_string(), "type": 1, "recipients": [user(4242, "someone", false)], "last_message_id": null})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"code": 10003, "message": "Unknown Channel"}))).into_response(),
    }
}

async fn typing(State(fake): State<FakeDiscord>, Path(channel): Path<u64>) -> StatusCode {
    fake.lock().typing.push(channel);
    StatusCode::NO_CONTENT
}

async fn interaction_callback(
    State(fake): State<FakeDiscord>,
    Path((id, _token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> StatusCode {
    fake.lock().callbacks.push((id, body));
    StatusCode::NO_CONTENT
}

async fn followup(
    State(fake): State<FakeDiscord>,
    Path((_app, _token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut inner = fake.lock();
    inner.next_id += 1;
    let id = inner.next_id;
    inner.followups.push(body.clone());
    Json(message(
        id,
        1,
        None,
        user(BOT_ID, "rtfm", true),
        body["content"].as_str().unwrap_or_default(),
    ))
}

async fn unknown(State(fake): State<FakeDiscord>, uri: Uri) -> StatusCode {
    fake.lock().unknown_routes.push(uri.to_string());
    StatusCode::NOT_FOUND
}

async fn gateway_socket(State(fake): State<FakeDiscord>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| run_gateway(fake, socket))
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn run_gateway(fake: FakeDiscord, mut socket: WebSocket) {
    let mut commands = fake.gateway.subscribe();
    if !send(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": 41250}}),
    )
    .await
    {
        return;
    }
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let Some(Ok(frame)) = frame else { return };
                let text = match frame {
                    WsMessage::Text(text) => text.to_string(),
                    WsMessage::Close(_) => return,
                    _ => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                let reply = match payload["op"].as_u64() {
                    Some(1) => Some(json!({"op": 11})),
                    Some(2) => {
                        fake.lock().identifies += 1;
                        let ready = json!({
                            "v": 10,
                            "user": user(BOT_ID, "rtfm", true),
                            "guilds": [],
                            "session_id": "fake-session",
                            "resume_gateway_url": format!("ws://{}/gateway", fake.addr),
                            "application": {"id": BOT_ID.to_string(), "flags": 0},
                        });
                        Some(json!({"op": 0, "t": "READY", "s": fake.next_sequence(), "d": ready}))
                    }
                    Some(6) => {
                        fake.lock().resumes += 1;
                        Some(json!({"op": 0, "t": "RESUMED", "s": fake.next_sequence(), "d": {}}))
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    if !send(&mut socket, reply).await {
                        return;
                    }
                }
            }
            command = commands.recv() => {
                match command {
                    Ok(GatewayCommand::Dispatch(event, data)) => {
                        let sequence = fake.next_sequence();
                        if !send(&mut socket, json!({"op": 0, "t": event, "s": sequence, "d": data})).await { return; }
                    }
                    Ok(GatewayCommand::Reconnect) => {
                        let _ = send(&mut socket, json!({"op": 7, "d": null})).await;
                        let _ = futures::SinkExt::close(&mut socket).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
