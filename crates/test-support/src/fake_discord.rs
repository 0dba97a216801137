//! A fake Discord as strict as the real one where our guarantees depend on it: the REST routes
//! the bot uses under `/api/v10` and a gateway websocket, on one local port. It records every
//! message-creating call the bot makes (including the ones it deduplicated) and lets a test, or
//! anyone over HTTP (`/_fake/…`, see [`control`](self#control-api)), push gateway events.
//!
//! Point serenity at it with `HttpBuilder::proxy(base_url)` + `ratelimiter_disabled(true)`
//! (the bot's `DISCORD_API_URL`); serenity then asks `GET /api/v10/gateway` for the websocket.
//!
//! # Documented limits it models (read in Discord's developer documentation)
//! - **Nonces** (`POST /channels/{id}/messages`, `nonce` + `enforce_nonce: true`): "if another
//!   message was created by the same author with the same nonce, that message will be returned
//!   and no new message will be created" — but only for messages created "within the past few
//!   minutes". Modelled as a window, default 5 min, configurable down to 0 s (no dedupe at all,
//!   the worst case our exactly-once logic must survive).
//! - **Interaction tokens** are valid for 15 minutes; a follow-up with an expired or unknown
//!   token gets 401 `{"code": 50027, "message": "Invalid Webhook Token"}`.
//! - **Rate limits**: a 429 carries `Retry-After` (seconds) and `retry_after` in the body; 5xx on
//!   demand ([`FakeDiscord::fail_next_posts`]).
//! - **Permissions**: a channel the bot may not post in answers 403 `Missing Access` (code 50001);
//!   an unknown channel 404 `Unknown Channel` (code 10003).
//! - **History**: `GET /channels/{id}/messages` pages (`before` / `after`, `limit` ≤ 100) over
//!   every message of the channel, including the bot's own replies and follow-ups (with their
//!   `message_reference` / `interaction_metadata`), newest first.
//! - **Guild permissions**: `GET /guilds/{id}/channels` lists the guild's channels (not its
//!   threads) with their `permission_overwrites`, `GET /guilds/{id}/roles` its roles — here the
//!   `@everyone` role, whose id is the guild's; permissions are decimal strings. A guild the
//!   bot is not in answers 404 `Unknown Guild` (code 10004).
//!
//! # Control API
//! - `POST /_fake/messages` `{channel_id, guild_id, author_id, username, content,
//!   reply_to_message_id?}` → dispatches MESSAGE_CREATE → `{message_id}`;
//! - `POST /_fake/interactions` `{channel_id, guild_id, user_id, username, question}` →
//!   dispatches a `/rtfm` INTERACTION_CREATE → `{interaction_id, token}`;
//! - `GET /_fake/posts` → every message-creating call, in order: `[{kind: "message"|"followup",
//!   channel_id, content, nonce, message_reference, interaction_token, deduplicated}]`;
//! - `GET /_fake/ready` → 200 once a bot has identified on the gateway (503 before).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// `VIEW_CHANNEL` (Discord permission bit 10).
pub const VIEW_CHANNEL: u64 = 1 << 10;
/// `READ_MESSAGE_HISTORY` (bit 16).
pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
/// A new guild's `@everyone` role: view channels, send messages, add reactions, embed links,
/// attach files, read message history, use application commands.
pub const DEFAULT_EVERYONE_PERMISSIONS: u64 =
    VIEW_CHANNEL | (1 << 11) | (1 << 6) | (1 << 14) | (1 << 15) | READ_MESSAGE_HISTORY | (1 << 31);

/// What kind of message-creating call the bot made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PostKind {
    /// `POST /channels/{id}/messages`.
    Message,
    /// `POST /webhooks/{app}/{token}` (an interaction follow-up).
    Followup,
}

/// One message-creating call the bot made (successful ones; refused calls are not posts).
#[derive(Debug, Clone)]
pub struct Posted {
    pub kind: PostKind,
    pub channel_id: u64,
    pub body: Value,
    /// The message Discord created, or returned instead (deduplicated).
    pub message_id: u64,
    /// Discord matched the nonce of a recent message and created nothing.
    pub deduplicated: bool,
    pub interaction_token: Option<String>,
    /// The interaction a follow-up answers.
    pub interaction_id: Option<u64>,
    /// When the fake received it (for latency benchmarks).
    pub at: Instant,
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

    /// What this post answers: the message it replies to, or the interaction it follows up.
    pub fn answers(&self) -> Option<u64> {
        self.reply_to().or(self.interaction_id)
    }

    pub fn nonce(&self) -> Option<&str> {
        self.body["nonce"].as_str()
    }

    /// The `GET /_fake/posts` form.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind,
            "channel_id": self.channel_id.to_string(),
            "message_id": self.message_id.to_string(),
            "content": self.content(),
            "nonce": self.body.get("nonce").cloned().unwrap_or(Value::Null),
            "message_reference": self.body.get("message_reference").cloned().unwrap_or(Value::Null),
            "interaction_token": self.interaction_token,
            "deduplicated": self.deduplicated,
        })
    }
}

/// How strict the fake is. `Default` is real Discord's documented behaviour.
#[derive(Debug, Clone, Copy)]
pub struct FakeOptions {
    /// Nonces are deduplicated only for messages created this recently (Discord: "a few
    /// minutes"; default 5 min). Zero: never.
    pub nonce_window: Duration,
    /// How long an interaction token accepts follow-ups (Discord: 15 min).
    pub token_ttl: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            nonce_window: Duration::from_secs(5 * 60),
            token_ttl: Duration::from_secs(15 * 60),
        }
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
    options: FakeOptions,
    posts: Vec<Posted>,
    callbacks: Vec<(u64, Value)>,
    commands: Vec<Value>,
    typing: Vec<u64>,
    failures: VecDeque<Failure>,
    history_failures_after: Option<usize>,
    history_requests: usize,
    /// nonce → (created at, the message created with it).
    nonces: HashMap<String, (Instant, Value)>,
    /// Every message of each channel (pushed, added as history, or posted by the bot).
    history: HashMap<u64, Vec<Value>>,
    /// interaction token → (interaction id, channel id, issued at).
    tokens: HashMap<String, (u64, u64, Instant)>,
    /// Channels whose posts are refused with this status (403 or 404).
    refused_channels: HashMap<u64, u16>,
    /// Channels whose posts get 429 with this `Retry-After` (seconds) until healed.
    limited_channels: HashMap<u64, f64>,
    message_creates: HashSet<u64>,
    channels: HashMap<u64, (Option<u64>, String)>,
    /// Threads: thread id → (parent channel, public).
    threads: HashMap<u64, (u64, bool)>,
    /// A channel's `permission_overwrites` (none unless set).
    overwrites: HashMap<u64, Vec<Value>>,
    /// A guild's `@everyone` permissions, when not [`DEFAULT_EVERYONE_PERMISSIONS`].
    everyone_permissions: HashMap<u64, u64>,
    /// `GET /guilds/{id}/channels` and `/roles` calls.
    guild_lookups: usize,
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
    /// On a free loopback port, with Discord's documented limits.
    pub async fn start() -> Self {
        Self::start_with(FakeOptions::default()).await
    }

    /// On a free loopback port with `options` (e.g. a nonce window of 0 s).
    pub async fn start_with(options: FakeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake discord");
        Self::serve(listener, options)
    }

    /// Serves on `listener` (the `fake-discord` binary binds its own address).
    pub fn serve(listener: tokio::net::TcpListener, options: FakeOptions) -> Self {
        let addr = listener.local_addr().expect("addr");
        let (gateway, _) = broadcast::channel(4096);
        let fake = Self {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                options,
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
            .route("/api/v10/users/@me", get(current_user))
            .route("/api/v10/channels/{channel}", get(get_channel))
            .route("/api/v10/guilds/{guild}/channels", get(guild_channels))
            .route("/api/v10/guilds/{guild}/roles", get(guild_roles))
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(interaction_callback),
            )
            .route("/api/v10/webhooks/{app}/{token}", post(followup))
            .route("/gateway", get(gateway_socket))
            .route("/_fake/messages", post(control::post_message))
            .route("/_fake/interactions", post(control::post_interaction))
            .route("/_fake/posts", get(control::get_posts))
            .route("/_fake/ready", get(control::get_ready))
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

    /// Messages the bot created in channels (not deduplicated, not follow-ups).
    pub fn posts(&self) -> Vec<Posted> {
        self.lock()
            .posts
            .iter()
            .filter(|post| post.kind == PostKind::Message && !post.deduplicated)
            .cloned()
            .collect()
    }

    /// Every message-creating call, in order: messages and follow-ups, including the ones
    /// Discord deduplicated by nonce. "Exactly one reply" is asserted on this list.
    pub fn attempts(&self) -> Vec<Posted> {
        self.lock().posts.clone()
    }

    /// Bodies of the interaction follow-ups that were accepted.
    pub fn followups(&self) -> Vec<Value> {
        self.lock()
            .posts
            .iter()
            .filter(|post| post.kind == PostKind::Followup)
            .map(|post| post.body.clone())
            .collect()
    }

    /// Posts to `channel_id` get 429 with `Retry-After: retry_after` (its route's bucket is
    /// empty) until [`FakeDiscord::unlimit_channel`]. Other channels are unaffected, as on
    /// Discord, where rate limits are per route.
    pub fn limit_channel(&self, channel_id: u64, retry_after: f64) {
        self.lock().limited_channels.insert(channel_id, retry_after);
    }

    pub fn unlimit_channel(&self, channel_id: u64) {
        self.lock().limited_channels.remove(&channel_id);
    }

    /// Posts to `channel_id` are refused from now on with `status` (403 Missing Access or
    /// 404 Unknown Channel).
    pub fn refuse_channel(&self, channel_id: u64, status: u16) {
        self.lock().refused_channels.insert(channel_id, status);
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

    /// A thread of `parent` (public or private); its id is its starter message's id.
    pub fn add_thread(&self, thread_id: u64, parent: u64, public: bool, name: &str) {
        let mut inner = self.lock();
        let guild = inner.channels.get(&parent).and_then(|(guild, _)| *guild);
        inner.channels.insert(thread_id, (guild, name.to_string()));
        inner.threads.insert(thread_id, (parent, public));
    }

    /// Sets a channel's permission overwrites (see [`role_overwrite`]).
    pub fn set_overwrites(&self, channel_id: u64, overwrites: Vec<Value>) {
        self.lock().overwrites.insert(channel_id, overwrites);
    }

    /// Sets the permissions of a guild's `@everyone` role (whose id is the guild's).
    pub fn set_everyone_permissions(&self, guild_id: u64, permissions: u64) {
        self.lock()
            .everyone_permissions
            .insert(guild_id, permissions);
    }

    /// How often the bot read a guild's channels or roles.
    pub fn guild_lookups(&self) -> usize {
        self.lock().guild_lookups
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

    /// Dispatches MESSAGE_CREATE; the message joins its channel's history (and the channel is
    /// known from then on, in its guild).
    pub fn push_message(&self, message: Value) {
        {
            let mut inner = self.lock();
            let channel = id_field(&message, "channel_id");
            let guild = message["guild_id"].as_str().and_then(|id| id.parse().ok());
            inner
                .channels
                .entry(channel)
                .or_insert_with(|| (guild, format!("channel-{channel}")));
            inner.message_creates.insert(id_field(&message, "id"));
            inner
                .history
                .entry(channel)
                .or_default()
                .push(message.clone());
        }
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

    /// Dispatches INTERACTION_CREATE; its token accepts follow-ups for the token lifetime.
    pub fn push_interaction(&self, interaction: Value) {
        {
            let mut inner = self.lock();
            let id = id_field(&interaction, "id");
            let channel = id_field(&interaction, "channel_id");
            if let Some(token) = interaction["token"].as_str() {
                inner
                    .tokens
                    .insert(token.to_string(), (id, channel, Instant::now()));
            }
        }
        self.dispatch("INTERACTION_CREATE", interaction);
    }

    /// Makes every interaction token issued so far expire now (as after 15 minutes).
    pub fn expire_interaction_tokens(&self) {
        let mut inner = self.lock();
        let ttl = inner.options.token_ttl;
        for (_, _, issued) in inner.tokens.values_mut() {
            *issued = Instant::now().checked_sub(ttl).unwrap_or(*issued);
        }
    }

    fn next_message_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
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

fn error_response(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

fn failure_response(failure: Failure) -> Response {
    match failure {
        Failure::Status(status) => error_response(
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
fn id_field(value: &Value, key: &str) -> u64 {
    value[key]
        .as_str()
        .and_then(|id| id.parse().ok())
        .or_else(|| value[key].as_u64())
        .unwrap_or_default()
}

async fn create_message(
    State(fake): State<FakeDiscord>,
    Path(channel): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    if let Some(failure) = inner.failures.pop_front() {
        return failure_response(failure);
    }
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
                kind: PostKind::Message,
                channel_id: channel,
                message_id: id_field(&existing, "id"),
                body,
                deduplicated: true,
                interaction_token: None,
                interaction_id: None,
                at: Instant::now(),
            });
            return Json(existing).into_response();
        }
    }
    inner.next_id += 1;
    let id = inner.next_id;
    let mut created = message(
        id,
        channel,
        guild,
        user(BOT_ID, "rtfm", true),
        body["content"].as_str().unwrap_or_default(),
    );
    if let Some(reference) = body.get("message_reference").filter(|r| !r.is_null()) {
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
        Posted {
            kind: PostKind::Message,
            channel_id: channel,
            message_id: id,
            body,
            deduplicated: false,
            interaction_token: None,
            interaction_id: None,
            at: Instant::now(),
        },
        &created,
        true,
    );
    Json(created).into_response()
}

/// Records a message the bot created: in the list of posts and, unless only its author sees
/// it, in its channel's history.
fn record_created(inner: &mut Inner, post: Posted, created: &Value, in_history: bool) {
    if in_history {
        inner
            .history
            .entry(post.channel_id)
            .or_default()
            .push(created.clone());
    }
    inner.posts.push(post);
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
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
        return error_response(StatusCode::FORBIDDEN, 50001, "Missing Access");
    }
    let mut messages: Vec<Value> = inner
        .history
        .get(&channel)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|message| {
            let id = id_field(message, "id");
            query.before.is_none_or(|before| id < before)
                && query.after.is_none_or(|after| id > after)
        })
        .collect();
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    if query.after.is_some() && query.before.is_none() {
        // `after`: the oldest `limit` messages after it (Discord still lists them newest first).
        messages.sort_by_key(|message| id_field(message, "id"));
        messages.truncate(limit);
        messages.reverse();
    } else {
        messages.sort_by_key(|message| std::cmp::Reverse(id_field(message, "id")));
        messages.truncate(limit);
    }
    Json(Value::Array(messages)).into_response()
}

async fn get_channel(State(fake): State<FakeDiscord>, Path(channel): Path<u64>) -> Response {
    let inner = fake.lock();
    match inner.channels.get(&channel) {
        Some((Some(guild), name)) => Json(guild_channel_json(&inner, channel, *guild, name)).into_response(),
        Some((None, _)) => Json(json!({"id": channel.to_string(), "type": 1, "recipients": [user(4242, "someone", false)], "last_message_id": null})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"code": 10003, "message": "Unknown Channel"}))).into_response(),
    }
}

fn guild_channel_json(inner: &Inner, channel: u64, guild: u64, name: &str) -> Value {
    let overwrites = inner.overwrites.get(&channel).cloned().unwrap_or_default();
    // Channel types: 0 text, 11 public thread, 12 private thread.
    let (kind, parent) = match inner.threads.get(&channel) {
        Some((parent, public)) => (if *public { 11 } else { 12 }, json!(parent.to_string())),
        None => (0, Value::Null),
    };
    json!({
        "id": channel.to_string(), "type": kind, "guild_id": guild.to_string(), "name": name,
        "position": 0, "permission_overwrites": overwrites, "nsfw": false,
        "rate_limit_per_user": 0, "parent_id": parent, "last_message_id": null, "topic": null
    })
}

/// A channel permission overwrite for a role (the guild's id is `@everyone`), as Discord
/// sends it: permissions as decimal strings.
pub fn role_overwrite(role_id: u64, allow: u64, deny: u64) -> Value {
    json!({"id": role_id.to_string(), "type": 0, "allow": allow.to_string(), "deny": deny.to_string()})
}

/// A guild the bot is in is one with a channel; Discord answers others `Unknown Guild`.
fn unknown_guild() -> Response {
    error_response(StatusCode::NOT_FOUND, 10004, "Unknown Guild")
}

/// `GET /guilds/{id}/channels`: the guild's channels with their overwrites (no threads).
async fn guild_channels(State(fake): State<FakeDiscord>, Path(guild): Path<u64>) -> Response {
    let mut inner = fake.lock();
    inner.guild_lookups += 1;
    let mut channels: Vec<(u64, String)> = inner
        .channels
        .iter()
        .filter(|(id, (in_guild, _))| *in_guild == Some(guild) && !inner.threads.contains_key(id))
        .map(|(id, (_, name))| (*id, name.clone()))
        .collect();
    if channels.is_empty() {
        return unknown_guild();
    }
    channels.sort();
    let channels: Vec<Value> = channels
        .iter()
        .map(|(id, name)| guild_channel_json(&inner, *id, guild, name))
        .collect();
    Json(Value::Array(channels)).into_response()
}

/// `GET /guilds/{id}/roles`: the `@everyone` role (id = the guild's).
async fn guild_roles(State(fake): State<FakeDiscord>, Path(guild): Path<u64>) -> Response {
    let mut inner = fake.lock();
    inner.guild_lookups += 1;
    if !inner
        .channels
        .values()
        .any(|(in_guild, _)| *in_guild == Some(guild))
    {
        return unknown_guild();
    }
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

async fn current_user() -> Json<Value> {
    Json(user(BOT_ID, "rtfm", true))
}

async fn typing(State(fake): State<FakeDiscord>, Path(channel): Path<u64>) -> StatusCode {
    fake.lock().typing.push(channel);
    StatusCode::NO_CONTENT
}

async fn interaction_callback(
    State(fake): State<FakeDiscord>,
    Path((id, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    let known = inner
        .tokens
        .get(&token)
        .is_some_and(|(interaction, _, _)| *interaction == id);
    if !known {
        return error_response(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    }
    inner.callbacks.push((id, body));
    StatusCode::NO_CONTENT.into_response()
}

async fn followup(
    State(fake): State<FakeDiscord>,
    Path((_app, token)): Path<(u64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = fake.lock();
    let ttl = inner.options.token_ttl;
    let Some((interaction, channel, _)) = inner
        .tokens
        .get(&token)
        .filter(|(_, _, issued)| issued.elapsed() < ttl)
        .copied()
    else {
        return error_response(StatusCode::UNAUTHORIZED, 50027, "Invalid Webhook Token");
    };
    if let Some(failure) = inner.failures.pop_front() {
        return failure_response(failure);
    }
    inner.next_id += 1;
    let id = inner.next_id;
    let interaction_user = 4242u64;
    let guild = inner.channels.get(&channel).and_then(|(guild, _)| *guild);
    let mut created = message(
        id,
        channel,
        guild,
        user(BOT_ID, "rtfm", true),
        body["content"].as_str().unwrap_or_default(),
    );
    created["webhook_id"] = json!(BOT_ID.to_string());
    created["interaction_metadata"] = json!({
        "id": interaction.to_string(),
        "type": 2,
        "user": user(interaction_user, "asker", false),
        "authorizing_integration_owners": {},
    });
    // An ephemeral follow-up (flags 64) is seen only by the asker: not in the channel.
    let ephemeral = body["flags"].as_u64().is_some_and(|flags| flags & 64 != 0);
    record_created(
        &mut inner,
        Posted {
            kind: PostKind::Followup,
            channel_id: channel,
            message_id: id,
            body,
            deduplicated: false,
            interaction_token: Some(token),
            interaction_id: Some(interaction),
            at: Instant::now(),
        },
        &created,
        !ephemeral,
    );
    Json(created).into_response()
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

/// The control API: drive the fake over HTTP (the `fake-discord` binary, outside checks).
mod control {
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
}
