//! What the bot does with a human message, wherever it came from (gateway or console):
//! publish it for indexing, and if it is a trigger, publish a question — or answer with the
//! usage hint or the rate-limit notice. Also keeps the questions waiting for an answer (for
//! the typing indicator, the "delayed" notice and slash-command follow-ups).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtfm_core::kafka::Producer;
use rtfm_core::supervise::every;
use rtfm_core::MessageEvent;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::interactions::{Deferred, Waiting};
use crate::marks::Marks;
use crate::metrics;
use crate::outbox::{Outbox, Target};
use crate::ratelimit::{self, Decision, RateLimiter};
use crate::records::{self, Incoming};
use crate::reply::{split_reply, DISCORD_LIMIT};
use crate::responder::RecentIds;
use crate::trigger::{Detected, Triggers, USAGE_HINT};
use crate::visibility::Visibility;

/// Told (only) to a slash-command asker whose question could not be queued.
pub const COULD_NOT_QUEUE_NOTICE: &str =
    "⚠️ RTFM could not queue your question right now — please ask again in a moment.";
/// Told (only) to a slash-command asker when no answer came before the interaction expires.
pub const SLASH_TIMEOUT_NOTICE: &str =
    "⏳ No answer in time — RTFM will post it in this channel when it's ready.";
/// Told to the asker when no answer came within `RESPONSE_TIMEOUT_SECS`.
pub const DELAYED_NOTICE: &str = "⏳ Still looking — the answer is taking longer than usual and will be posted here when it's ready.";

/// A question waiting for its answer.
#[derive(Debug, Clone)]
pub struct Pending {
    pub target: Target,
    pub asked: Instant,
    pub delay_notified: bool,
    pub last_typing: Option<Instant>,
}

/// State shared by the gateway handler, the console, the responder and the pending monitor.
pub struct Pipeline {
    pub producer: Producer,
    pub triggers: Triggers,
    pub limiter: Mutex<RateLimiter>,
    pub rate_limit: usize,
    pub pending: Mutex<HashMap<String, Pending>>,
    pub response_timeout: Duration,
    /// When a waiting slash command gets its "no answer in time" follow-up (before its
    /// token expires; `SLASH_DEADLINE_SECS`).
    pub slash_deadline: Duration,
    /// The channels each guild shows to everyone (stamped on guild questions).
    pub visibility: Visibility,
    /// Per channel, the newest message handled (durable: where a restart catches up from).
    pub marks: Arc<Marks>,
    /// Slash commands deferred and not yet followed up (durable: a restart still ends them).
    pub deferred: Arc<Deferred>,
    /// Messages handled lately (by id): a message met both live and by a catch-up is handled
    /// by whichever meets it first.
    pub seen: Mutex<RecentIds>,
}

/// How a question arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Message,
    Slash,
    Console,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Message => "message",
            Via::Slash => "slash",
            Via::Console => "console",
        }
    }
}

impl Pipeline {
    /// Publishes a human message and handles a trigger in it. `bot_id` enables mentions.
    pub async fn on_message(
        &self,
        incoming: &Incoming,
        bot_id: Option<u64>,
        outbox: &Outbox,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let Some(detected) = self.publish(incoming, bot_id, shutdown).await? else {
            return Ok(()); // a catch-up met it first
        };
        let target = Target {
            channel_id: incoming.channel_id,
            reply_to: Some(incoming.message_id),
            interaction_token: None,
        };
        let via = if outbox_is_console(outbox) {
            Via::Console
        } else {
            Via::Message
        };
        if detected != Detected::None {
            self.on_trigger(incoming, detected, target, via, outbox, shutdown)
                .await?;
        }
        self.marks.advance(incoming.channel_id, incoming.message_id);
        Ok(())
    }

    /// Whether `message_id` is met here for the first time (then it is this caller's to handle).
    fn first_sighting(&self, message_id: u64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(&message_id.to_string()) {
            return false;
        }
        seen.insert(&message_id.to_string());
        true
    }

    /// Publishes a human message to `discord-messages` (flagged if it asks the bot) unless it
    /// was already handled, and says what trigger it holds. `None`: already handled.
    pub async fn publish(
        &self,
        incoming: &Incoming,
        bot_id: Option<u64>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Detected>> {
        if !self.first_sighting(incoming.message_id) {
            return Ok(None);
        }
        info!(
            message_id = incoming.message_id,
            channel_id = incoming.channel_id,
            length = incoming.content.len(),
            "message received"
        );
        debug!(message_id = incoming.message_id, content = %incoming.content, "message content");
        let detected = self.triggers.detect(&incoming.content, bot_id);
        let mut record = records::discord_message(incoming, MessageEvent::Create);
        // Published like every message (other consumers may want it), but flagged: a question
        // to the bot is never evidence for an answer.
        record.is_trigger = detected != Detected::None;
        // A gateway event cannot be fetched again: keep sending until Kafka has it.
        if self
            .producer
            .send_until_acked(&record, shutdown)
            .await
            .is_none()
        {
            anyhow::bail!(
                "shut down before message {} was published",
                incoming.message_id
            );
        }
        metrics::PUBLISHED.with_label_values(&["message"]).inc();
        Ok(Some(detected))
    }

    /// Handles a trigger (from a message or a slash command).
    pub async fn on_trigger(
        &self,
        incoming: &Incoming,
        detected: Detected,
        target: Target,
        via: Via,
        outbox: &Outbox,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let question = match detected {
            Detected::None => return Ok(()),
            Detected::Empty => {
                self.say(
                    outbox,
                    &target,
                    USAGE_HINT,
                    &format!("usage-{}", incoming.message_id),
                    shutdown,
                )
                .await;
                return Ok(());
            }
            Detected::Question(question) => question,
        };
        // A slash command was admitted before it was deferred (see `admit`).
        let decision = match via {
            Via::Slash => Decision::Allowed,
            _ => self.admit(incoming.author_id),
        };
        if let Decision::Limited { notify } = decision {
            if notify {
                self.say(
                    outbox,
                    &target,
                    &ratelimit::notice(self.rate_limit),
                    &format!("limit-{}", incoming.message_id),
                    shutdown,
                )
                .await;
            }
            return Ok(());
        }
        let mut query = records::query(incoming, &question, via.as_str());
        if via == Via::Message {
            // One message, one question, whoever asks it (live, or a catch-up after a crash
            // that left it unanswered): the same id, so its answer is posted once.
            query.query_id = records::message_query_id(incoming.message_id);
        }
        if let (Some(guild_id), Outbox::Discord(http)) = (incoming.guild_id, outbox) {
            // Guild-wide retrieval may search these besides the question's own channel.
            query.visible_channel_ids = Some(
                self.visibility
                    .for_question(http, guild_id, incoming.channel_id, incoming.thread_parent)
                    .await,
            );
        }
        if let Some(token) = &target.interaction_token {
            // Carried durably with the question (and echoed in the response), so a restarted
            // bot can still finish the interaction while its token lives.
            query
                .context
                .insert("interaction".into(), records::interaction_context(token));
        }
        if self
            .producer
            .send_until_acked(&query, shutdown)
            .await
            .is_none()
        {
            if target.interaction_token.is_some() {
                // The interaction is deferred: tell the asker rather than leave it thinking.
                let budget = CancellationToken::new();
                let notice_target = target.clone();
                let nonce_seed = format!("queue-{}", incoming.message_id);
                let notice = self.say(
                    outbox,
                    &notice_target,
                    COULD_NOT_QUEUE_NOTICE,
                    &nonce_seed,
                    &budget,
                );
                let _ = tokio::time::timeout(Duration::from_secs(5), notice).await;
            }
            anyhow::bail!(
                "shut down before the question of {} was published",
                incoming.message_id
            );
        }
        metrics::PUBLISHED.with_label_values(&["query"]).inc();
        info!(query_id = %query.query_id, message_id = incoming.message_id, via = via.as_str(), "question published");
        if let Some(token) = &target.interaction_token {
            self.deferred.add(
                &query.query_id,
                Waiting {
                    token: token.clone(),
                    channel_id: target.channel_id,
                    asked_at: chrono::Utc::now().timestamp(),
                },
            );
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(
                query.query_id.clone(),
                Pending {
                    target: target.clone(),
                    asked: Instant::now(),
                    delay_notified: false,
                    last_typing: None,
                },
            );
        }
        outbox.typing(target.channel_id).await;
        Ok(())
    }

    /// Counts a trigger of `user_id` against the per-user limit.
    pub fn admit(&self, user_id: u64) -> Decision {
        let decision = self
            .limiter
            .lock()
            .map(|mut limiter| limiter.check(user_id, Instant::now()))
            .unwrap_or(Decision::Allowed);
        if let Decision::Limited { .. } = decision {
            metrics::RATE_LIMITED.inc();
            info!(user_id, "trigger rate-limited");
        }
        decision
    }

    /// Whether `content` asks the bot (a trigger phrase, or a mention of `bot_id`).
    pub fn is_trigger(&self, content: &str, bot_id: Option<u64>) -> bool {
        self.triggers.detect(content, bot_id) != Detected::None
    }

    /// The answer target of a query this bot asked, if it is still waiting (removes it).
    pub fn take_pending(&self, query_id: &str) -> Option<Pending> {
        self.pending
            .lock()
            .ok()
            .and_then(|mut pending| pending.remove(query_id))
    }

    /// Puts the slash commands a previous run deferred back among the questions waiting, with
    /// the time they have waited already (their answer, or at the deadline the notice, is
    /// their one follow-up); those whose token has expired are dropped.
    pub fn restore_deferred(&self) {
        let now = chrono::Utc::now().timestamp();
        let mut restored = 0;
        for (query_id, waiting) in self.deferred.all() {
            let waited = Duration::from_secs(u64::try_from(now - waiting.asked_at).unwrap_or(0));
            let asked = Instant::now().checked_sub(waited);
            match asked {
                Some(asked) if waited < Duration::from_secs(900) => {
                    if let Ok(mut pending) = self.pending.lock() {
                        pending.entry(query_id).or_insert(Pending {
                            target: Target {
                                channel_id: waiting.channel_id,
                                reply_to: None,
                                interaction_token: Some(waiting.token),
                            },
                            asked,
                            delay_notified: false,
                            last_typing: None,
                        });
                        restored += 1;
                    }
                }
                _ => self.deferred.remove(&query_id),
            }
        }
        if restored > 0 {
            info!(
                restored,
                "slash commands deferred before the restart are waiting again"
            );
        }
    }

    pub fn pending_count(&self) -> usize {
        self.pending
            .lock()
            .map(|pending| pending.len())
            .unwrap_or(0)
    }

    async fn say(
        &self,
        outbox: &Outbox,
        target: &Target,
        text: &str,
        nonce_seed: &str,
        shutdown: &CancellationToken,
    ) {
        let parts = split_reply(text, DISCORD_LIMIT);
        if let Err(err) = outbox.deliver(target, &parts, nonce_seed, shutdown).await {
            warn!(error = %err, "could not post a notice");
        }
    }

    /// Every 2 s: keep "typing…" alive for waiting questions, tell askers once when an answer
    /// is late, forget questions older than 15 minutes (an interaction token's lifetime).
    pub async fn watch_pending(
        &self,
        outbox: Outbox,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        every(Duration::from_secs(2), &shutdown, || {
            self.check_pending(&outbox, &shutdown)
        })
        .await
    }

    async fn check_pending(&self, outbox: &Outbox, shutdown: &CancellationToken) {
        let now = Instant::now();
        let mut typing = Vec::new();
        let mut delayed = Vec::new();
        let mut expired = Vec::new();
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|query_id, waiting| {
                let live = now.duration_since(waiting.asked) < Duration::from_secs(900);
                if !live {
                    expired.push(query_id.clone());
                }
                live
            });
            for (query_id, waiting) in pending.iter_mut() {
                let waited = now.duration_since(waiting.asked);
                let slash = waiting.target.interaction_token.is_some();
                // A slash command gets exactly one follow-up: the answer, or (just before
                // its token expires) a notice; the late answer then goes to the channel.
                let due = if slash {
                    waited >= self.slash_deadline
                } else {
                    waited >= self.response_timeout
                };
                if !waiting.delay_notified && due {
                    waiting.delay_notified = true;
                    let notice_target = waiting.target.clone();
                    if slash {
                        waiting.target = Target {
                            channel_id: waiting.target.channel_id,
                            ..Target::default()
                        };
                    }
                    delayed.push((query_id.clone(), notice_target));
                } else if waiting
                    .last_typing
                    .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(8))
                {
                    waiting.last_typing = Some(now);
                    typing.push(waiting.target.channel_id);
                }
            }
        }
        for query_id in expired {
            self.deferred.remove(&query_id);
        }
        for channel_id in typing {
            outbox.typing(channel_id).await;
        }
        for (query_id, target) in delayed {
            info!(%query_id, "answer delayed; telling the asker");
            let notice = if target.interaction_token.is_some() {
                SLASH_TIMEOUT_NOTICE
            } else {
                DELAYED_NOTICE
            };
            self.say(
                outbox,
                &target,
                notice,
                &format!("delay-{query_id}"),
                shutdown,
            )
            .await;
            // Its one follow-up is sent: the late answer goes to the channel.
            self.deferred.remove(&query_id);
        }
    }
}

fn outbox_is_console(outbox: &Outbox) -> bool {
    matches!(outbox, Outbox::Console(_))
}
