//! The questions waiting for their answer. The side that asks (the pipeline) registers each
//! one; the side that finishes questions owns them: the responder takes a question when its
//! answer comes, and [`Questions::watch`] keeps the asker informed meanwhile — "typing…", the
//! "still looking" notice, and for a slash command its one follow-up before the token expires.
//! Slash commands are also kept durably ([`Deferred`]) so that a restart still ends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtfm_core::supervise::every;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::interactions::{Deferred, Waiting};
use crate::outbox::{Outbox, Target};

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

/// The questions this bot asked and has not answered yet.
pub struct Questions {
    pending: Mutex<HashMap<String, Pending>>,
    /// Slash commands deferred and not yet followed up (durable: a restart still ends them).
    pub deferred: Arc<Deferred>,
    /// When a waiting message trigger gets the "still looking" notice.
    pub response_timeout: Duration,
    /// When a waiting slash command gets its "no answer in time" follow-up (before its token
    /// expires; `SLASH_DEADLINE_SECS`).
    pub slash_deadline: Duration,
}

impl Questions {
    pub fn new(
        deferred: Arc<Deferred>,
        response_timeout: Duration,
        slash_deadline: Duration,
    ) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            deferred,
            response_timeout,
            slash_deadline,
        }
    }

    /// `query_id` was asked for `target`: it waits for its answer from now.
    pub fn asked(&self, query_id: &str, target: &Target) {
        if let Some(token) = &target.interaction_token {
            self.deferred.add(
                query_id,
                Waiting {
                    token: token.clone(),
                    channel_id: target.channel_id,
                    asked_at: chrono::Utc::now().timestamp(),
                },
            );
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(
                query_id.to_string(),
                Pending {
                    target: target.clone(),
                    asked: Instant::now(),
                    delay_notified: false,
                    last_typing: None,
                },
            );
        }
    }

    /// The answer target of a query this bot asked, if it is still waiting (removes it).
    pub fn take(&self, query_id: &str) -> Option<Pending> {
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

    pub fn count(&self) -> usize {
        self.pending
            .lock()
            .map(|pending| pending.len())
            .unwrap_or(0)
    }

    /// Every 2 s: keep "typing…" alive for waiting questions, tell askers once when an answer
    /// is late, forget questions older than 15 minutes (an interaction token's lifetime).
    pub async fn watch(&self, outbox: Outbox, shutdown: CancellationToken) -> anyhow::Result<()> {
        every(Duration::from_secs(2), &shutdown, || {
            self.check(&outbox, &shutdown)
        })
        .await
    }

    async fn check(&self, outbox: &Outbox, shutdown: &CancellationToken) {
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
            outbox
                .say(&target, notice, &format!("delay-{query_id}"), shutdown)
                .await;
            // Its one follow-up is sent: the late answer goes to the channel.
            self.deferred.remove(&query_id);
        }
    }
}
