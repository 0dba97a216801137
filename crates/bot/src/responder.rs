//! `bot-responses` → Discord, exactly one reply per query.
//!
//! The consumer is at-least-once (`read_committed`, offsets stored after the post succeeded),
//! so a response can arrive twice (redelivery after a crash or rebalance). Two guards make the
//! reply happen once: a bounded in-memory set of answered query ids (same process), and the
//! Discord `nonce` + `enforce_nonce` derived from the query id (across restarts: Discord
//! returns the earlier message instead of posting a new one).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use rtfm_core::kafka::Consumer;
use rtfm_core::BotResponse;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::metrics;
use crate::outbox::{Outbox, PostError, Target};
use crate::pipeline::Pipeline;
use crate::reply::{split_reply, DISCORD_LIMIT};

/// The most recent answered query ids, bounded.
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    pub fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_string()) {
            self.order.push_back(id.to_string());
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.set.remove(&oldest);
                }
            }
        }
    }
}

fn parse_id(text: &str) -> Option<u64> {
    text.parse().ok().filter(|id| *id != 0)
}

/// Posts every response once. Returns on shutdown after committing the posted ones.
/// `only_pending`: console mode answers only the questions asked in this session.
pub async fn run(
    consumer: Arc<Consumer<BotResponse>>,
    outbox: Outbox,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
    only_pending: bool,
) -> anyhow::Result<()> {
    let mut answered = RecentIds::new(10_000);
    loop {
        let received = match consumer.recv(&shutdown).await {
            Ok(Some(received)) => received,
            Ok(None) => break,
            // Transient errors are absorbed by the consumer; this one ends the process.
            Err(err) => {
                return Err(anyhow::Error::new(err).context("while consuming bot-responses"))
            }
        };
        let response = &received.record;
        if answered.contains(&response.query_id) {
            metrics::DUPLICATES_SUPPRESSED.inc();
            info!(query_id = %response.query_id, "duplicate response suppressed");
            consumer.store(&received);
            continue;
        }
        let target = match pipeline.take_pending(&response.query_id) {
            Some(pending) => pending.target,
            None if only_pending => {
                consumer.store(&received);
                continue;
            }
            None => {
                let Some(channel_id) = parse_id(&response.channel_id) else {
                    consumer.store(&received);
                    continue;
                };
                Target {
                    channel_id,
                    reply_to: parse_id(&response.original_message_id),
                    interaction_token: None,
                }
            }
        };
        let parts = split_reply(&response.response_text, DISCORD_LIMIT);
        // A response that was already in the partition when we got it may have been posted
        // by our predecessor, which then died before committing. Discord's nonce catches that
        // only for a few minutes; the channel itself says so for as long as it keeps history.
        let mut first_part = 0;
        if received.maybe_redelivered {
            let original = parse_id(&response.original_message_id).unwrap_or_default();
            match outbox
                .already_posted(&target, original, &parts, &shutdown)
                .await
            {
                Ok(posted) if posted == parts.len() => {
                    metrics::DUPLICATES_SUPPRESSED.inc();
                    info!(query_id = %response.query_id, "answer already in the channel (posted before a restart); not posting it again");
                    answered.insert(&response.query_id);
                    consumer.store(&received);
                    continue;
                }
                Ok(posted) => first_part = posted,
                Err(err) => {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    warn!(query_id = %response.query_id, error = %format!("{err:#}"), "could not check the channel for an earlier answer; posting (the nonce still guards recent duplicates)")
                }
            }
        }
        match outbox
            .deliver_from(&target, &parts, first_part, &response.query_id, &shutdown)
            .await
        {
            Ok(()) => {
                metrics::REPLIES_POSTED.inc();
                info!(query_id = %response.query_id, parts = parts.len(), "answer posted");
            }
            Err(PostError::Shutdown) => break,
            Err(err) => {
                error!(query_id = %response.query_id, error = %err, "Discord refused the answer; dead-lettering it");
                if !consumer
                    .dead_letter_record(&received, &err.to_string(), &shutdown)
                    .await
                {
                    break;
                }
            }
        }
        answered.insert(&response.query_id);
        consumer.store(&received);
    }
    if let Err(err) = consumer.commit() {
        warn!(error = %err, "final commit of bot-responses failed; some answers may be re-delivered (deduplicated by nonce)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_are_bounded_and_forget_the_oldest() {
        let mut recent = RecentIds::new(2);
        recent.insert("a");
        recent.insert("b");
        recent.insert("a");
        assert!(recent.contains("a") && recent.contains("b"));
        recent.insert("c");
        assert!(!recent.contains("a"));
        assert!(recent.contains("b") && recent.contains("c"));
    }
}
