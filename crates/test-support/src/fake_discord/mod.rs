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
//! - **Interaction responses**: an interaction must be answered within 3 s
//!   ([`FakeOptions::ack_window`]), else 404 code 10062 "Unknown interaction"; a second response
//!   gets 400 code 40060 "Interaction has already been acknowledged"; a follow-up before any
//!   response gets 404 code 10015 "Unknown Webhook". The first follow-up of a *deferred*
//!   response replaces its "thinking…" message and takes its visibility: after a public defer it
//!   is public whatever its own flags (Discord API reference, "Receiving and Responding",
//!   Followup Messages). An immediate response with flags 64 is seen by the asker only.
//! - **Authentication**: every REST route but `GET /gateway` and the interaction routes (which
//!   carry their own token) needs `Authorization: Bot <token>`; any other answers 401
//!   `{"code": 0, "message": "401: Unauthorized"}`. An IDENTIFY with a bad token is closed with
//!   4004 "Authentication failed"; one asking for the Message Content intent when the
//!   application has not enabled it ([`FakeOptions::message_content_intent`]) with 4014
//!   "Disallowed intent(s)" (developer documentation, "Gateway" → close event codes).
//! - **Commands**: `PUT /applications/{id}/commands` (global) and
//!   `PUT /applications/{id}/guilds/{guild}/commands` (one guild) replace the set.
//! - **Rate limits**: a 429 carries `Retry-After` (seconds) and `retry_after` in the body; 5xx on
//!   demand ([`FakeDiscord::fail_next_posts`]), before creating anything or — as a gateway
//!   timeout between Discord and the client does — after the message was created
//!   ([`Failure::CreatedThen`]), or created and never answered in time
//!   ([`Failure::CreatedThenHang`]: the client's own timeout fires).
//! - **Content**: at most 2 000 characters in a message or follow-up; more is refused with 400,
//!   code 50035 "Invalid Form Body" (`BASE_TYPE_MAX_LENGTH`), as Discord documents it.
//! - **Deletes**: a deleted message leaves its channel's history.
//! - **Replies** (Create Message → `message_reference`): a reply to a message not in the
//!   channel (deleted, unknown) is posted as a plain message, without the reference, when
//!   `fail_if_not_exists` is false; otherwise (the default is true) it is refused with 400, code
//!   50035, `REPLIES_UNKNOWN_MESSAGE`.
//! - **Permissions**: a channel the bot may not post in answers 403 `Missing Access` (code 50001);
//!   an unknown channel 404 `Unknown Channel` (code 10003).
//! - **History**: `GET /channels/{id}/messages` pages (`before` / `after`, `limit` ≤ 100) over
//!   every message of the channel, including the bot's own replies and follow-ups (with their
//!   `message_reference` / `interaction_metadata`), newest first.
//! - **Sessions** (developer documentation, "Gateway" → Resuming): READY lists the bot's
//!   guilds (as unavailable guilds); a new session (IDENTIFY) is sent nothing dispatched before
//!   it; a resumed one (RESUME with the last `seq` it saw) is first sent every event it missed.
//!   Nothing is sent to a socket before it identified or resumed.
//! - **Channel listings** carry `last_message_id`; `GET /guilds/{id}/threads/active` lists the
//!   guild's threads that are not archived; `GET /channels/{id}/threads/archived/public` and
//!   `…/private` a channel's archived ones, most recently archived first, paged with `before`
//!   — an ISO 8601 timestamp there, not an id (a number is refused with 400, code 50035) — and
//!   `has_more` (Discord API reference, "List Public Archived Threads"). Forum channels (type
//!   15) hold no messages of their own, only threads.
//! - **Rate limits on reads** (when [`FakeOptions::rate_limits`] is set): a channel's history
//!   and its archived-thread listings are buckets of their own, as message creates are.
//! - **Guild permissions**: `GET /guilds/{id}/channels` lists the guild's channels (not its
//!   threads) with their `permission_overwrites`, `GET /guilds/{id}/roles` its roles — here the
//!   `@everyone` role, whose id is the guild's; permissions are decimal strings. A guild the
//!   bot is not in answers 404 `Unknown Guild` (code 10004).
//!
//! # Control API
//! - `POST /_fake/messages` `{channel_id, guild_id, author_id, username, content,
//!   reply_to_message_id?}` → dispatches MESSAGE_CREATE → `{message_id}`;
//! - `POST /_fake/interactions` `{channel_id, guild_id?, user_id, username, question?,
//!   command?, subcommand?, options?, permissions?}` → dispatches an INTERACTION_CREATE (no
//!   `guild_id`: in a DM; `question` alone: the ask command as the bot registered it) →
//!   `{interaction_id, token}`;
//! - `GET /_fake/posts` → every message-creating call, in order: `[{kind: "message"|"followup"|
//!   "response"|"edit", channel_id, message_id, content, nonce, message_reference,
//!   interaction_token, interaction_id, ephemeral, deduplicated}]`;
//! - `GET /_fake/ready` → 200 once a bot has identified on the gateway (503 before).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

mod commands;
mod control;
mod gateway;
mod interactions;
mod listing;
mod observe;
mod payloads;
mod posts;
mod rest;
mod tls;
mod world;

use commands::{register_commands, register_guild_commands};
use gateway::gateway_socket;
use interactions::{edit_original, followup, interaction_callback};
use listing::*;
pub use payloads::{
    command_interaction, guild_create, message, message_now, role_overwrite, slash_command, user,
    Invoked,
};
pub use posts::{Failure, FakeOptions, PostKind, Posted, RateLimits};
use rest::*;
pub use tls::CA_PEM;

#[derive(Debug, Clone)]
enum GatewayCommand {
    /// Sequence number, event name, data.
    Dispatch(u64, &'static str, Value),
    Reconnect,
}

/// How an interaction was acknowledged (its one response).
#[derive(Debug, Clone, Copy)]
struct Ack {
    /// Type 5: "thinking…", to be replaced by the first follow-up.
    deferred: bool,
    /// The response's flags had EPHEMERAL (64).
    ephemeral: bool,
    /// The first follow-up has replaced the deferred message.
    replaced: bool,
}

#[derive(Default)]
struct Inner {
    options: FakeOptions,
    posts: Vec<Posted>,
    callbacks: Vec<(u64, Value)>,
    commands: Vec<Value>,
    typing: Vec<u64>,
    failures: VecDeque<Failure>,
    /// Every n-th message create fails like this (after the queued `failures`).
    periodic_failure: Option<(u64, Failure)>,
    creates: u64,
    history_failures_after: Option<usize>,
    history_requests: usize,
    /// History pages served, per channel.
    history_reads: HashMap<u64, usize>,
    /// nonce → (created at, the message created with it).
    nonces: HashMap<String, (Instant, Value)>,
    /// Every message of each channel (pushed, added as history, or posted by the bot).
    history: HashMap<u64, Vec<Value>>,
    /// interaction token → (interaction id, channel id, issued at).
    tokens: HashMap<String, (u64, u64, Instant)>,
    /// interaction token → how it was acknowledged.
    acks: HashMap<String, Ack>,
    /// Channels whose posts are refused with this status (403 or 404).
    refused_channels: HashMap<u64, u16>,
    /// Channels whose posts get 429 with this `Retry-After` (seconds) until healed.
    limited_channels: HashMap<u64, f64>,
    message_creates: HashSet<u64>,
    channels: HashMap<u64, (Option<u64>, String)>,
    /// Threads: thread id → (parent channel, public).
    threads: HashMap<u64, (u64, bool)>,
    /// Archived threads → when (ISO 8601).
    archived: HashMap<u64, String>,
    /// Channel types other than text (forums).
    kinds: HashMap<u64, u8>,
    /// A forum's tags (`available_tags`): forum → (tag id, name).
    forum_tags: HashMap<u64, Vec<(u64, String)>>,
    /// A thread's tags (`applied_tags`) and owner (`owner_id`, who started it).
    applied_tags: HashMap<u64, Vec<u64>>,
    owners: HashMap<u64, u64>,
    /// A channel's `permission_overwrites` (none unless set).
    overwrites: HashMap<u64, Vec<Value>>,
    /// A guild's `@everyone` permissions, when not [`DEFAULT_EVERYONE_PERMISSIONS`].
    everyone_permissions: HashMap<u64, u64>,
    /// `GET /guilds/{id}/channels` and `/roles` calls.
    guild_lookups: usize,
    /// Guilds the bot was removed from (and not added back to): Discord refuses their lookups.
    left_guilds: std::collections::HashSet<u64>,
    identifies: usize,
    /// IDENTIFYs answered with a close code (bad token, disallowed intent).
    refused_identifies: usize,
    /// REST calls refused with 401 (bad or missing token).
    unauthorized: usize,
    /// `/rtfm` as registered in one guild (`PUT …/guilds/{id}/commands`): guild → commands.
    guild_commands: HashMap<u64, Vec<Value>>,
    resumes: usize,
    /// Gateway sockets open now.
    open_sockets: usize,
    /// Rate-limit buckets: route bucket → (window ends, requests in it).
    buckets: HashMap<String, (Instant, u32)>,
    /// The global limit's current second: (started, requests in it).
    global_window: Option<(Instant, u32)>,
    /// 429s answered: (route buckets, global).
    rate_limited: (usize, usize),
    /// Recent dispatches (sequence, event, data), replayed to a session that resumes.
    dispatched: VecDeque<(u64, &'static str, Value)>,
    next_id: u64,
    unknown_routes: Vec<String>,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub addr: SocketAddr,
    /// The same REST API over TLS as `discord.com` (trust [`CA_PEM`]): for a bot run exactly as
    /// in production, with only `discord.com` resolved here.
    pub tls_addr: SocketAddr,
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
        let tls_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the TLS port");
        tls_listener.set_nonblocking(true).expect("non-blocking");
        let tls_listener =
            tokio::net::TcpListener::from_std(tls_listener).expect("a tokio listener");
        let tls_addr = tls_listener.local_addr().expect("addr");
        let (gateway, _) = broadcast::channel(4096);
        let fake = Self {
            addr,
            tls_addr,
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
                "/api/v10/applications/{app}/guilds/{guild}/commands",
                put(register_guild_commands),
            )
            .route(
                "/api/v10/channels/{channel}/messages",
                post(create_message).get(channel_history),
            )
            .route("/api/v10/channels/{channel}/typing", post(typing))
            .route("/api/v10/users/@me", get(current_user))
            .route("/api/v10/channels/{channel}", get(get_channel))
            .route(
                "/api/v10/channels/{channel}/messages/{message}",
                get(get_message),
            )
            .route("/api/v10/guilds/{guild}/channels", get(guild_channels))
            .route("/api/v10/guilds/{guild}/roles", get(guild_roles))
            .route(
                "/api/v10/guilds/{guild}/threads/active",
                get(guild_active_threads),
            )
            .route(
                "/api/v10/channels/{channel}/threads/archived/public",
                get(archived_public),
            )
            .route(
                "/api/v10/channels/{channel}/threads/archived/private",
                get(archived_private),
            )
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(interaction_callback),
            )
            .route("/api/v10/webhooks/{app}/{token}", post(followup))
            .route(
                "/api/v10/webhooks/{app}/{token}/messages/@original",
                axum::routing::patch(edit_original),
            )
            .route("/gateway", get(gateway_socket))
            .route("/_fake/messages", post(control::post_message))
            .route("/_fake/interactions", post(control::post_interaction))
            .route("/_fake/posts", get(control::get_posts))
            .route("/_fake/ready", get(control::get_ready))
            .fallback(unknown)
            .layer(axum::middleware::from_fn_with_state(
                fake.clone(),
                require_bot_token,
            ))
            .layer(axum::middleware::from_fn(hold_back))
            .with_state(fake.clone());
        tls::serve(tls_listener, app.clone());
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

    fn next_sequence(&self) -> u64 {
        let mut sequence = self
            .sequence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *sequence += 1;
        *sequence
    }

    /// Removes deleted messages from their channel's history.
    fn forget(&self, channel_id: u64, ids: &[u64]) {
        if let Some(history) = self.lock().history.get_mut(&channel_id) {
            history.retain(|message| !ids.contains(&id_field(message, "id")));
        }
    }

    fn dispatch(&self, event: &'static str, data: Value) {
        let sequence = self.next_sequence();
        {
            let mut inner = self.lock();
            inner.dispatched.push_back((sequence, event, data.clone()));
            while inner.dispatched.len() > 10_000 {
                inner.dispatched.pop_front();
            }
        }
        let _ = self
            .gateway
            .send(GatewayCommand::Dispatch(sequence, event, data));
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
            let id = id_field(&message, "id");
            inner.message_creates.insert(id);
            inner.next_id = inner.next_id.max(id);
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

    /// Dispatches MESSAGE_DELETE; the message leaves its channel's history, as on Discord.
    pub fn push_delete(&self, id: u64, channel_id: u64, guild_id: Option<u64>) {
        self.forget(channel_id, &[id]);
        let mut data = json!({"id": id.to_string(), "channel_id": channel_id.to_string()});
        if let Some(guild_id) = guild_id {
            data["guild_id"] = json!(guild_id.to_string());
        }
        self.dispatch("MESSAGE_DELETE", data);
    }

    pub fn push_delete_bulk(&self, ids: &[u64], channel_id: u64, guild_id: Option<u64>) {
        self.forget(channel_id, ids);
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

    /// A new message id, greater than every id the fake has seen or made: Discord's ids are
    /// snowflakes, ordered by time across a channel (a test that pushes messages with ids of
    /// its own must keep them above the bot's replies if it relies on that order).
    pub fn next_message_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
    }

    /// Sends op 7: the client reconnects and resumes.
    pub fn request_reconnect(&self) {
        let _ = self.gateway.send(GatewayCommand::Reconnect);
    }
}
