//! What the bot does with a human message, wherever it came from (gateway or console):
//! publish it for indexing, and if it is a trigger, publish a question — or answer with the
//! usage hint or the rate-limit notice. Also keeps the questions waiting for an answer (for
//! the typing indicator, the "delayed" notice and slash-command follow-ups).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtfm_core::kafka::Producer;
use rtfm_core::MessageEvent;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::marks::Marks;
use crate::metrics;
use crate::outbox::{Outbox, Target};
use crate::questions::Questions;
use crate::ratelimit::{self, Decision, RateLimiter};
use crate::recent::RecentIds;
use crate::records::{self, Incoming};
use crate::trigger::{Detected, Triggers, USAGE_HINT};
use crate::visibility::Visibility;

/// Told (only) to a slash-command asker whose question could not be queued.
pub const COULD_NOT_QUEUE_NOTICE: &str =
    "⚠️ RTFM could not queue your question right now — please ask again in a moment.";

/// The inbound side: what the gateway handler, the console and the catch-up hand messages to.
pub struct Pipeline {
    pub producer: Producer,
    pub triggers: Triggers,
    pub limiter: Mutex<RateLimiter>,
    pub rate_limit: usize,
    /// The questions asked, until the outbound side finishes them.
    pub questions: Arc<Questions>,
    /// The channels each guild shows to everyone (stamped on guild questions).
    pub visibility: Visibility,
    /// Per channel, the newest message handled (durable: where a restart catches up from).
    pub marks: Arc<Marks>,
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
        via: Via,
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
                outbox
                    .say(
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
                outbox
                    .say(
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
        self.send_question(query, incoming, &target, outbox, shutdown)
            .await?;
        outbox.typing(target.channel_id).await;
        Ok(())
    }

    /// Asks the processor for a command's answer (`command`: `status`), which comes back like
    /// an answer, as the interaction's follow-up.
    pub async fn ask_command(
        &self,
        incoming: &Incoming,
        command: &str,
        target: Target,
        outbox: &Outbox,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut query = records::query(incoming, &incoming.content, Via::Slash.as_str());
        query.context.insert("command".into(), command.into());
        self.send_question(query, incoming, &target, outbox, shutdown)
            .await
    }

    /// Publishes `query` (with its interaction, if any) and registers it as asked.
    async fn send_question(
        &self,
        mut query: rtfm_core::BotQuery,
        incoming: &Incoming,
        target: &Target,
        outbox: &Outbox,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
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
                let notice =
                    outbox.say(&notice_target, COULD_NOT_QUEUE_NOTICE, &nonce_seed, &budget);
                let _ = tokio::time::timeout(Duration::from_secs(5), notice).await;
            }
            anyhow::bail!(
                "shut down before the question of {} was published",
                incoming.message_id
            );
        }
        metrics::PUBLISHED.with_label_values(&["query"]).inc();
        info!(query_id = %query.query_id, message_id = incoming.message_id, "question published");
        self.questions.asked(query.query_id.as_str(), target);
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
}
