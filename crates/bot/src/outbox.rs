//! Where the bot's words go: Discord (REST, as replies or interaction follow-ups) or the
//! terminal (console mode). Posting to Discord retries 429/5xx/transport errors with backoff
//! until it succeeds or the bot shuts down; every part carries a `nonce` derived from the
//! query id with `enforce_nonce`, so a retry within Discord's few-minute nonce window never
//! posts twice. Beyond that window the responder's check of the channel history
//! ([`crate::history`]) is what prevents a second reply.

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::backoff::Backoff;
use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateInteractionResponseFollowup, CreateMessage, Http,
    MessageId, MessageReference, Nonce,
};
use serenity::builder::Builder;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics;
use crate::reply::{split_reply, DISCORD_LIMIT};

/// Where an answer goes.
#[derive(Clone, PartialEq, Default)]
pub struct Target {
    pub channel_id: u64,
    /// Reply to this message (falls back to a plain message if it is gone).
    pub reply_to: Option<u64>,
    /// A slash command's interaction token: answer as its follow-up. A credential for 15
    /// minutes: never logged (see the `Debug` impl).
    ///
    /// Follow-ups are never ephemeral: the first follow-up of a deferred response replaces its
    /// public "thinking…" message and is public whatever its flags (Discord). What only the
    /// asker should see (usage hint, rate limit) is answered before deferring
    /// ([`crate::discord`]).
    pub interaction_token: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("channel_id", &self.channel_id)
            .field("reply_to", &self.reply_to)
            .field(
                "interaction_token",
                &self.interaction_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Discord refused for good (e.g. 403 missing access, 404 unknown channel).
    #[error("Discord refused the message: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("shut down before the message was posted")]
    Shutdown,
}

/// What the bot prints in console mode.
#[derive(Debug, Clone, Default)]
pub struct Console;

#[derive(Clone)]
pub enum Outbox {
    Discord(Arc<Http>),
    Console(Console),
}

/// A Discord nonce (≤ 25 characters) unique to a query and part: FNV-1a of the query id.
pub fn nonce_for(query_id: &str, part: usize) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in query_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("r{hash:016x}{part:02}")
}

/// Mentions allowed in our messages: only the replied-to user. Never `@everyone`, `@here`,
/// roles, or users named in the text (no `parse` entries at all).
fn safe_mentions(ping_replied_user: bool) -> CreateAllowedMentions {
    CreateAllowedMentions::new().replied_user(ping_replied_user)
}

impl Outbox {
    /// Posts a notice (split to Discord's limit), logging a failure.
    pub async fn say(
        &self,
        target: &Target,
        text: &str,
        nonce_seed: &str,
        shutdown: &CancellationToken,
    ) {
        let parts = split_reply(text, DISCORD_LIMIT);
        if let Err(err) = self.deliver(target, &parts, nonce_seed, shutdown).await {
            warn!(error = %err, "could not post a notice");
        }
    }

    /// Posts `parts` in order (a notice: not looked for in the channel after a failure). The
    /// first part replies to the target message.
    pub async fn deliver(
        &self,
        target: &Target,
        parts: &[String],
        nonce_seed: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), PostError> {
        self.deliver_from(target, parts, 0, nonce_seed, None, shutdown)
            .await
    }

    /// Posts `parts[first..]` (the earlier ones are already in the channel). With `original`
    /// (the message or interaction the parts answer), a post that failed without a clear "no"
    /// (5xx, no answer at all: Discord may have created it anyway) is looked for in the
    /// channel before it is sent again — interaction follow-ups carry no nonce, and a
    /// channel message's nonce only helps for a few minutes.
    pub async fn deliver_from(
        &self,
        target: &Target,
        parts: &[String],
        first: usize,
        nonce_seed: &str,
        original: Option<u64>,
        shutdown: &CancellationToken,
    ) -> Result<(), PostError> {
        match self {
            Outbox::Console(_) => {
                for part in parts.iter().skip(first) {
                    let text = without_console_links(part);
                    println!("\nrtfm> {}\n", text.replace('\n', "\n      "));
                }
                Ok(())
            }
            Outbox::Discord(http) => {
                for (index, part) in parts.iter().enumerate().skip(first) {
                    let nonce = nonce_for(nonce_seed, index);
                    let reply_to = if index == 0 { target.reply_to } else { None };
                    let posted_after_all = || async {
                        match original {
                            Some(original) => crate::history::already_posted(
                                http,
                                target.channel_id,
                                original,
                                &parts[..=index],
                                shutdown,
                            )
                            .await
                            .is_ok_and(|posted| posted > index),
                            _ => false,
                        }
                    };
                    retry(
                        shutdown,
                        || post(http, target, part, reply_to, &nonce),
                        posted_after_all,
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// How many of `parts` answering `original` are already in the target channel (see
    /// [`crate::history::already_posted`]). The console has no history: 0.
    pub async fn already_posted(
        &self,
        target: &Target,
        original: u64,
        parts: &[String],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<usize> {
        match self {
            Outbox::Console(_) => Ok(0),
            Outbox::Discord(http) => {
                crate::history::already_posted(http, target.channel_id, original, parts, shutdown)
                    .await
            }
        }
    }

    /// "RTFM is typing…" (best effort).
    pub async fn typing(&self, channel_id: u64) {
        if let Outbox::Discord(http) = self {
            if let Err(err) = ChannelId::new(channel_id)
                .broadcast_typing(http.as_ref())
                .await
            {
                tracing::debug!(error = %err, "typing indicator failed");
            }
        }
    }
}

async fn post(
    http: &Http,
    target: &Target,
    content: &str,
    reply_to: Option<u64>,
    nonce: &str,
) -> Result<(), serenity::Error> {
    if let Some(token) = &target.interaction_token {
        CreateInteractionResponseFollowup::new()
            .content(content)
            .allowed_mentions(safe_mentions(false))
            .execute(http, (None, token.as_str()))
            .await?;
        return Ok(());
    }
    let mut message = CreateMessage::new()
        .content(content)
        .allowed_mentions(safe_mentions(true))
        .nonce(Nonce::String(nonce.to_string()))
        .enforce_nonce(true);
    if let Some(reply_to) = reply_to {
        let reference =
            MessageReference::from((ChannelId::new(target.channel_id), MessageId::new(reply_to)))
                .fail_if_not_exists(false);
        message = message.reference_message(reference);
    }
    ChannelId::new(target.channel_id)
        .send_message(http, message)
        .await?;
    Ok(())
}

/// HTTP status of a serenity error, if it was an HTTP answer.
fn status_of(err: &serenity::Error) -> Option<(u16, String)> {
    match err {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(response)) => Some((
            response.status_code.as_u16(),
            response.error.message.clone(),
        )),
        _ => None,
    }
}

/// Retries `call` on 429, 5xx and transport errors with capped exponential backoff. After a
/// failure that may have created the message anyway (5xx, or no answer), `posted_after_all`
/// is asked first, and a `true` ends the retries: the message is there.
async fn retry<F, Fut, P, PFut>(
    shutdown: &CancellationToken,
    mut call: F,
    mut posted_after_all: P,
) -> Result<(), PostError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), serenity::Error>>,
    P: FnMut() -> PFut,
    PFut: std::future::Future<Output = bool>,
{
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            // Discord answered 2xx (the message exists) but serenity could not read the body:
            // posting again would duplicate the message.
            Err(serenity::Error::Json(err)) => {
                warn!(error = %err, "Discord accepted the message but its answer was unreadable; not posting it again");
                return Ok(());
            }
            Err(err) => {
                let status = status_of(&err);
                if let Some((status, message)) = &status {
                    if *status != 429 && *status < 500 {
                        return Err(PostError::Refused {
                            status: *status,
                            message: message.clone(),
                        });
                    }
                }
                metrics::POST_FAILURES.inc();
                warn!(error = %err, "posting to Discord failed; retrying");
                if !backoff.wait(shutdown).await {
                    return Err(PostError::Shutdown);
                }
                let uncertain = status.as_ref().is_none_or(|(status, _)| *status >= 500);
                if uncertain && posted_after_all().await {
                    metrics::DUPLICATES_SUPPRESSED.inc();
                    warn!("Discord created the message although it answered with an error; not posting it again");
                    return Ok(());
                }
            }
        }
    }
}

/// Console mode's local "guild" (snowflake-shaped): its jump links lead nowhere.
pub const CONSOLE_GUILD: u64 = 100_000_000_000_000_001;

/// `text` without the jump links to console messages: they lead nowhere outside Discord. A
/// link on a line of its own goes with its line; a link after "name — " goes with the dash.
pub fn without_console_links(text: &str) -> String {
    static LINK: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        let pattern = format!(
            r"(\n|\s*—\s*|\s+)?<?https://discord\.com/channels/{CONSOLE_GUILD}/[0-9]+/[0-9]+>?"
        );
        // A constant pattern: it compiles (the unit test below proves it).
        regex::Regex::new(&pattern).expect("valid pattern")
    });
    LINK.replace_all(text, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_never_shows_its_interaction_token() {
        let target = Target {
            channel_id: 1,
            interaction_token: Some("secret-interaction-token".into()),
            ..Target::default()
        };
        let shown = format!("{target:?}");
        assert!(!shown.contains("secret-interaction-token"), "{shown}");
    }

    #[test]
    fn nonces_are_short_stable_and_distinct() {
        let a = nonce_for("9d3c7c1e-3a51-4f6e-9c5e-0e1d2b3a4c5d", 0);
        assert!(a.len() <= 25);
        assert_eq!(a, nonce_for("9d3c7c1e-3a51-4f6e-9c5e-0e1d2b3a4c5d", 0));
        assert_ne!(a, nonce_for("9d3c7c1e-3a51-4f6e-9c5e-0e1d2b3a4c5d", 1));
        assert_ne!(a, nonce_for("another", 0));
    }

    #[test]
    fn allowed_mentions_never_parse_everyone_roles_or_users() {
        let json = serde_json::to_value(safe_mentions(true)).expect("json");
        let parse = json
            .get("parse")
            .and_then(|p| p.as_array())
            .map(|p| p.len())
            .unwrap_or(0);
        assert_eq!(parse, 0, "{json}");
        assert_eq!(json["replied_user"], true);
    }
}
