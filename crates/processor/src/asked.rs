//! The questions asked, and "asked before?": a question that nearly repeats one answered lately,
//! where the asker can see it, also links to that earlier question (the thread where it was
//! answered).
//!
//! Every question is kept in a collection of its own (the messages' collection name +
//! `_questions`): its text, its embedding, where and by whom it was asked, and whether RTFM
//! found an answer — what the moderators' `/rtfm-admin status` reads ([`crate::status`]), for
//! [`QUESTION_DAYS`] or [`AskedBefore::within_days`], whichever is longer. A new question is
//! looked up there within its own reach ([`Reach`]: the same guild and channels as its
//! sources) and the last [`AskedBefore::within_days`] days; an answered question asked by a
//! message, at [`NEAR_REPEAT`] or above, is linked.

use std::sync::Arc;

use rtfm_core::BotQuery;
use serde_json::{json, Map};
use tracing::warn;

use crate::gate::Gate;
use crate::index::IndexedMessage;
use crate::retrieval::{jump_link, Reach, Scope};
use crate::store::{Field, Filter, StoredMessage, VectorStore};

/// Cosine similarity of two questions' embeddings from which the later one repeats the
/// earlier. Measured with all-MiniLM-L6-v2 on the eval set: the 28 hand-written rewordings of
/// dev questions sit at 0.35–0.93 from their originals (median 0.75; 14 at 0.75 or more), the
/// 3 486 pairs of different dev questions at most 0.62 (99.9 % below 0.49). 0.75 links half the
/// rewordings and no different question (docs/retrieval.md).
pub const NEAR_REPEAT: f32 = 0.75;
/// Questions are kept at least this many days (the moderators' overview covers a week).
pub const QUESTION_DAYS: u64 = 7;

/// The answered questions, and how far back a repeat is looked for.
pub struct AskedBefore {
    pub store: Arc<dyn VectorStore>,
    pub within_days: u64,
    pub scope: Scope,
    /// The community's choices: a forgotten member's question is neither kept nor linked.
    pub gate: Gate,
}

impl AskedBefore {
    /// The link to an earlier question that `query` (embedded as `embedding`) nearly repeats,
    /// if there is one its asker may see.
    pub async fn find(&self, query: &BotQuery, embedding: &[f32], now: f64) -> Option<String> {
        let reach = Reach::of(query, self.scope);
        let since = now - self.within_days as f64 * 86_400.0;
        let filter = Filter::all_of([
            reach.filter(),
            Filter::Between(Field::Epoch, since, now + 86_400.0),
        ]);
        if self.within_days == 0 {
            return None;
        }
        let hits = match self.store.query(embedding, &filter, 10).await {
            Ok(hits) => hits,
            Err(err) => {
                warn!(error = %err, "could not look for the question asked before");
                return None;
            }
        };
        // Kept before the question log existed: answered, asked by a message.
        let flag = |hit: &crate::store::Hit, field: Field| {
            hit.message
                .metadata
                .get(field.key())
                .and_then(serde_json::Value::as_bool)
                != Some(false)
        };
        hits.into_iter()
            .filter(|hit| flag(hit, Field::Answered) && flag(hit, Field::Linkable))
            .filter(|hit| hit.similarity >= NEAR_REPEAT)
            .map(|hit| IndexedMessage::from_stored(&hit.message))
            .find(|earlier| {
                reach.admits(earlier)
                    && self.gate.admits_indexed(earlier)
                    && earlier.id != query.original_message_id
            })
            .map(|earlier| jump_link(earlier.guild_id, earlier.channel_id, earlier.id))
    }

    /// Keeps `query` (`answered`: RTFM found an answer) unless its asker chose forget-me,
    /// under its `original_message_id`: the message that asked (an answer can link to it) or
    /// the slash command's interaction (not linkable).
    pub async fn remember(&self, query: &BotQuery, embedding: Vec<f32>, now: f64, answered: bool) {
        let asked_by_message = !query.context.contains_key("interaction");
        if !self.gate.admits_query(query) {
            return;
        }
        let mut metadata = Map::new();
        if let Some(guild) = &query.guild_id {
            metadata.insert(Field::Guild.key().into(), json!(guild));
        }
        metadata.insert(Field::IsDm.key().into(), json!(query.guild_id.is_none()));
        metadata.insert(Field::Channel.key().into(), json!(query.channel_id));
        // The asker, so that forget-me removes their questions too.
        metadata.insert(Field::Author.key().into(), json!(query.user_id));
        metadata.insert(Field::Epoch.key().into(), json!(now));
        metadata.insert(Field::Timestamp.key().into(), json!(query.timestamp));
        metadata.insert(Field::Answered.key().into(), json!(answered));
        metadata.insert(Field::Linkable.key().into(), json!(asked_by_message));
        metadata.insert(Field::Username.key().into(), json!(query.username));
        // Asked by a message: under its id, so a hit reads back as that message.
        let question = StoredMessage {
            id: query.original_message_id,
            document: query.question.clone(),
            metadata,
        };
        if let Err(err) = self.store.upsert(&[question], &[embedding]).await {
            warn!(error = %err, "could not remember the question for later repeats");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn asked(id: u64, guild: Option<&str>, channel: &str) -> BotQuery {
        BotQuery {
            query_id: format!("q{id}").parse().expect("a query id"),
            original_message_id: id.into(),
            question: "how do I rotate the deploy key?".into(),
            channel_id: channel.parse().expect("an id"),
            guild_id: guild.map(|id| id.parse().expect("an id")),
            ..Default::default()
        }
    }

    fn asked_before() -> AskedBefore {
        AskedBefore {
            store: Arc::new(MemoryStore::new()),
            within_days: 30,
            scope: Scope::Channel,
            gate: Gate::open(),
        }
    }

    const NOW: f64 = 1_800_000_000.0;

    #[tokio::test]
    async fn a_near_repeat_in_the_same_channel_links_the_earlier_question() {
        let asked_before = asked_before();
        asked_before
            .remember(
                &asked(100, Some("1"), "5"),
                vec![1.0, 0.0],
                NOW - 3_600.0,
                true,
            )
            .await;
        let link = asked_before
            .find(&asked(200, Some("1"), "5"), &[0.99, 0.05], NOW)
            .await;
        assert_eq!(
            link.as_deref(),
            Some("https://discord.com/channels/1/5/100")
        );
        // The same question again (a redelivery) does not link to itself.
        assert_eq!(
            asked_before
                .find(&asked(100, Some("1"), "5"), &[1.0, 0.0], NOW)
                .await,
            None
        );
    }

    #[tokio::test]
    async fn nothing_is_linked_across_reach_age_or_wording() {
        let asked_before = asked_before();
        asked_before
            .remember(
                &asked(100, Some("1"), "5"),
                vec![1.0, 0.0],
                NOW - 3_600.0,
                true,
            )
            .await;
        asked_before
            .remember(
                &asked(101, Some("1"), "5"),
                vec![0.0, 1.0],
                NOW - 40.0 * 86_400.0,
                true,
            )
            .await;
        for (query, embedding) in [
            (asked(200, Some("1"), "6"), [1.0, 0.0]), // another channel
            (asked(201, Some("2"), "5"), [1.0, 0.0]), // another guild, same channel id
            (asked(202, None, "5"), [1.0, 0.0]),      // a DM
            (asked(203, Some("1"), "5"), [0.0, 1.0]), // only like one older than 30 days
            (asked(204, Some("1"), "5"), [0.7, 0.7]), // related, not a repeat
        ] {
            assert_eq!(
                asked_before.find(&query, &embedding, NOW).await,
                None,
                "{query:?}"
            );
        }
    }

    #[tokio::test]
    async fn only_answered_questions_asked_by_a_message_are_linked() {
        let asked_before = asked_before();
        let mut slash = asked(100, Some("1"), "5");
        slash
            .context
            .insert("interaction".into(), json!({"token": "t"}));
        asked_before
            .remember(&slash, vec![1.0, 0.0], NOW, true)
            .await;
        asked_before
            .remember(&asked(101, Some("1"), "5"), vec![1.0, 0.0], NOW, false)
            .await;
        assert_eq!(
            asked_before.store.count().await.expect("count"),
            2,
            "both kept"
        );
        assert_eq!(
            asked_before
                .find(&asked(200, Some("1"), "5"), &[1.0, 0.0], NOW)
                .await,
            None,
            "a slash command has no message to link, a question not answered no answer"
        );
    }
}
