//! What the fake records and how strict it is.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What kind of message-creating call the bot made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PostKind {
    /// `POST /channels/{id}/messages`.
    Message,
    /// `POST /webhooks/{app}/{token}` (an interaction follow-up).
    Followup,
    /// `POST /interactions/{id}/{token}/callback` with a message (type 4): the immediate
    /// response to a command.
    Response,
    /// `PATCH /webhooks/{app}/{token}/messages/@original`: the response edited.
    Edit,
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
    /// Seen by the asker only (as Discord showed it, which for the first follow-up of a
    /// deferred response is the deferral's visibility, not the follow-up's flags).
    pub ephemeral: bool,
}

impl Posted {
    /// A channel message received now, created as message `message_id`.
    pub(super) fn message(channel_id: u64, message_id: u64, body: Value) -> Self {
        Self {
            kind: PostKind::Message,
            channel_id,
            body,
            message_id,
            deduplicated: false,
            interaction_token: None,
            interaction_id: None,
            at: Instant::now(),
            ephemeral: false,
        }
    }

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
            "interaction_id": self.interaction_id.map(|id| id.to_string()),
            "ephemeral": self.ephemeral,
            "deduplicated": self.deduplicated,
        })
    }
}

/// How strict the fake is. `Default` is real Discord's documented behaviour.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Nonces are deduplicated only for messages created this recently (Discord: "a few
    /// minutes"; default 5 min). Zero: never.
    pub nonce_window: Duration,
    /// How long an interaction token accepts follow-ups (Discord: 15 min).
    pub token_ttl: Duration,
    /// The one bot token Discord accepts; `None`: any non-empty one. Any other token gets
    /// 401 on REST and close code 4004 on the gateway.
    pub bot_token: Option<String>,
    /// Whether the application has the privileged Message Content intent enabled in the
    /// Developer Portal. Off: an IDENTIFY asking for it is closed with code 4014.
    pub message_content_intent: bool,
    /// How long an interaction may wait for its response (Discord: 3 s).
    pub ack_window: Duration,
    /// Per-route buckets and the global limit, with Discord's headers. `None` (the default for
    /// now): no buckets. Tests that run the bot as production does (serenity's rate limiter
    /// on, [`FakeDiscord::tls_addr`]) turn them on; the others point serenity at the fake as a
    /// proxy, which turns its limiter off, and would only measure their own backoff.
    pub rate_limits: Option<RateLimits>,
}

/// Discord's rate limits as the fake enforces them (developer documentation, "Rate Limits"):
/// per-route buckets announced in `X-RateLimit-Limit`, `-Remaining`, `-Reset`, `-Reset-After`
/// and `-Bucket` on every answer of the route; over a bucket, 429 with `Retry-After` and a body
/// with `retry_after` and `global: false`; over the global limit (about 50 requests a second per
/// bot), 429 with `X-RateLimit-Global: true` and `global: true`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Requests per bucket (a channel's messages, an interaction's follow-ups) per window.
    pub per_route: u32,
    pub window: Duration,
    /// Requests per second across every route.
    pub global_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_route: 5,
            window: Duration::from_secs(5),
            global_per_second: 50,
        }
    }
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            nonce_window: Duration::from_secs(5 * 60),
            token_ttl: Duration::from_secs(15 * 60),
            bot_token: None,
            message_content_intent: true,
            ack_window: Duration::from_secs(3),
            rate_limits: None,
        }
    }
}

impl FakeOptions {
    /// Whether REST's `Authorization` header (`Bot <token>`) is accepted.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        self.accepts_token(authorization.and_then(|value| value.strip_prefix("Bot ")))
    }

    /// Whether an IDENTIFY's `token` is accepted: Discord takes it with or without the `Bot `
    /// prefix (serenity sends it, discord.py does not).
    pub fn accepts_identify(&self, token: Option<&str>) -> bool {
        self.accepts_token(token.map(|token| token.strip_prefix("Bot ").unwrap_or(token)))
    }

    fn accepts_token(&self, token: Option<&str>) -> bool {
        let Some(token) = token else {
            return false;
        };
        match &self.bot_token {
            Some(expected) => token == expected,
            None => !token.trim().is_empty(),
        }
    }
}

/// What the next `POST …/messages` gets instead of success.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// This status, and nothing created.
    Status(u16),
    /// 429 with `retry_after` seconds in the body.
    RateLimited(f64),
    /// The message **is** created (in the channel, with its nonce), and the answer is still
    /// this status — what a gateway timeout between Discord and the client looks like.
    CreatedThen(u16),
    /// The message is created and the answer held back this long (then 504): a client with a
    /// shorter timeout gives up on a message that exists.
    CreatedThenHang(std::time::Duration),
}
