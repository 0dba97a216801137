//! Finding the earlier messages that answer a question.
//!
//! 1. The question is embedded and the `k` nearest messages are fetched from Chroma **inside
//!    the question's scope** (its guild, by default its channel; a DM only its DM channel).
//!    Scope is built from the query's `guild_id`/`channel_id` as stamped by the bot: the store
//!    filters by channel, and every message it returns is checked against the whole rule,
//!    guild included; the processor never widens it, so no text crosses a guild (see
//!    [`Reach`]).
//! 2. Hits below the similarity threshold, the triggering message itself and duplicates are
//!    dropped; at most `max_sources` remain.
//! 3. Each hit is expanded into its conversation ([`crate::conversation`]): replies and
//!    threads by id at any distance, mentions and typed names of its author nearby, and
//!    ± `neighbors` time-adjacent messages as context. Two store queries per question fetch
//!    all of it (windows and first-level links, then second-level replies), inside the same
//!    scope.
//!
//! The storage format lives in [`crate::index`], the store behind [`crate::store::VectorStore`].

use std::collections::HashSet;
use std::sync::Arc;

use rtfm_core::ids::{ChannelId, GuildId, MessageId};
use rtfm_core::BotQuery;

use crate::conversation::{self, Expansion, Role};
use crate::embedding::{EmbedError, Embedder};
use crate::gate::Gate;
use crate::index::{self, IndexedMessage};
use crate::store::{Filter, Hit, StoreError, VectorStore};

mod reach;
mod settings;
pub use reach::Reach;
pub use settings::{defaults, RetrievalSettings, Scope};

/// One message shown to the model or quoted to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub guild_id: Option<GuildId>,
    pub username: String,
    pub timestamp: String,
    pub content: String,
    /// Similarity to the question if this message was itself a hit.
    pub similarity: Option<f32>,
    /// The message this one replies to, when known.
    pub reply_to: Option<MessageId>,
    /// Its part in the hit's conversation.
    pub role: Role,
}

impl SourceMessage {
    /// A message of channel 11 in guild 1 by alice, for tests; override what a test needs.
    #[doc(hidden)]
    pub fn sample(id: u64, role: Role) -> Self {
        Self {
            message_id: id.into(),
            channel_id: 11.into(),
            guild_id: Some(1.into()),
            username: "alice".into(),
            timestamp: "2025-11-02T12:34:56.789Z".into(),
            content: format!("message {id}"),
            similarity: None,
            reply_to: None,
            role,
        }
    }

    fn from_indexed(message: IndexedMessage, role: Role, similarity: Option<f32>) -> Self {
        Self {
            message_id: message.id,
            channel_id: message.channel_id,
            guild_id: message.guild_id,
            username: message.username,
            timestamp: message.timestamp,
            content: message.content,
            similarity,
            reply_to: message.reply_to,
            role,
        }
    }

    /// `https://discord.com/channels/{guild|@me}/{channel}/{message}`.
    pub fn jump_link(&self) -> String {
        jump_link(self.guild_id, self.channel_id, self.message_id)
    }
}

pub fn jump_link(
    guild_id: Option<GuildId>,
    channel_id: ChannelId,
    message_id: MessageId,
) -> String {
    let guild = guild_id.map_or_else(|| "@me".to_string(), |guild| guild.to_string());
    format!("https://discord.com/channels/{guild}/{channel_id}/{message_id}")
}

/// A hit with its conversation around it, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGroup {
    pub hit_id: MessageId,
    pub similarity: f32,
    pub messages: Vec<SourceMessage>,
}

impl SourceGroup {
    /// The group's messages in answer order: the hit, its answers (in time order), the
    /// question it answers, then the context after it and before it (nearest first).
    pub fn ranked(&self) -> Vec<&SourceMessage> {
        let position = self
            .messages
            .iter()
            .position(|message| message.message_id == self.hit_id)
            .unwrap_or(0);
        let with_role = |role: Role| {
            self.messages
                .iter()
                .filter(move |message| message.role == role)
        };
        let context_after = self.messages[position.min(self.messages.len())..]
            .iter()
            .filter(|message| message.role == Role::Context);
        let context_before = self.messages[..position.min(self.messages.len())]
            .iter()
            .rev()
            .filter(|message| message.role == Role::Context);
        with_role(Role::Hit)
            .chain(with_role(Role::Answer))
            .chain(with_role(Role::Question))
            .chain(context_after)
            .chain(context_before)
            .collect()
    }
}

/// What retrieval found for one question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved {
    pub groups: Vec<SourceGroup>,
}

impl Retrieved {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn best_similarity(&self) -> f32 {
        self.groups
            .iter()
            .map(|group| group.similarity)
            .fold(0.0, f32::max)
    }

    /// Every message once, best evidence first across groups: each group's hit and answers
    /// (groups in rank order), then what followed the hits, then the questions the hits
    /// answer, then what preceded the hits.
    pub fn ranked(&self) -> Vec<&SourceMessage> {
        let tiers: Vec<Vec<&SourceMessage>> =
            self.groups.iter().map(|group| group.ranked()).collect();
        let position_of = |group: &SourceGroup, message: &SourceMessage| {
            let hit = group
                .messages
                .iter()
                .position(|m| m.message_id == group.hit_id)
                .unwrap_or(0);
            let at = group
                .messages
                .iter()
                .position(|m| m.message_id == message.message_id)
                .unwrap_or(0);
            at > hit
        };
        let tier = |group: &SourceGroup, message: &SourceMessage| match message.role {
            Role::Hit | Role::Answer => 0,
            Role::Context if position_of(group, message) => 1,
            Role::Question => 2,
            Role::Context => 3,
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for level in 0..4 {
            for (group, ranked) in self.groups.iter().zip(&tiers) {
                for message in ranked {
                    if tier(group, message) == level && seen.insert(message.message_id) {
                        out.push(*message);
                    }
                }
            }
        }
        out
    }

    /// Every conversation message once (hits, answers, questions — not mere context), groups
    /// in rank order, each in time order, numbered from 1 by position: the sources given to a
    /// model.
    pub fn numbered(&self) -> Vec<SourceMessage> {
        let mut seen = HashSet::new();
        self.groups
            .iter()
            .flat_map(|group| group.messages.iter())
            .filter(|message| message.role.is_conversation())
            .filter(|message| seen.insert(message.message_id))
            .cloned()
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Added to the similarity of a relevant message marked as an answer (its asker's ✅, a forum
/// post tagged solved): enough to pass near equals, not a clearly better match.
pub const SOLVED_BONUS: f32 = 0.1;

/// Keeps hits above the threshold, never the triggering message, best first, at most `max`.
pub fn select_hits(
    mut hits: Vec<Hit>,
    excluded_id: MessageId,
    settings: &RetrievalSettings,
) -> Vec<Hit> {
    hits.retain(|hit| hit.similarity >= settings.min_similarity && hit.message.id != excluded_id);
    hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    let mut seen = HashSet::new();
    hits.retain(|hit| seen.insert(hit.message.id));
    hits.truncate(settings.max_sources);
    hits
}

/// Embeds questions and looks them up in the store.
#[derive(Clone)]
pub struct Retriever {
    pub store: Arc<dyn VectorStore>,
    pub embedder: Embedder,
    pub settings: RetrievalSettings,
    /// The community's choices: nothing they keep out is quoted.
    pub gate: Gate,
}

impl Retriever {
    pub async fn retrieve(&self, query: &BotQuery) -> Result<Retrieved, RetrieveError> {
        Ok(self.retrieve_embedded(query).await?.0)
    }

    /// [`Retriever::retrieve`], with the question's embedding (for a look at earlier questions).
    pub async fn retrieve_embedded(
        &self,
        query: &BotQuery,
    ) -> Result<(Retrieved, Vec<f32>), RetrieveError> {
        let started = std::time::Instant::now();
        let embedding = self.embedder.embed_one(&query.question).await?;
        let search = Search {
            store: self.store.as_ref(),
            settings: &self.settings,
            gate: &self.gate,
        };
        let retrieved = search.run(query, &embedding, started).await?;
        Ok((retrieved, embedding))
    }
}

/// The rest of a retrieval once the question is embedded: search, select, expand — over any
/// [`VectorStore`].
pub struct Search<'a> {
    pub store: &'a dyn VectorStore,
    pub settings: &'a RetrievalSettings,
    pub gate: &'a Gate,
}

impl Search<'_> {
    /// The sources for `query`, whose question embeds as `embedding` (`started`: when the
    /// question arrived, for the stage timings).
    pub async fn run(
        &self,
        query: &BotQuery,
        embedding: &[f32],
        started: std::time::Instant,
    ) -> Result<Retrieved, StoreError> {
        let reach = Reach::of(query, self.settings.scope);
        let embedded = started.elapsed();
        // One extra candidate in case the triggering message is among them.
        let mut hits = self
            .store
            .query(embedding, &reach.filter(), self.settings.candidates + 1)
            .await?;
        let searched = started.elapsed();
        hits.retain(|hit| self.admits(&reach, &IndexedMessage::from_stored(&hit.message)));
        // What its asker marked as the answer ranks higher among the relevant (a relevant hit
        // stays relevant; an irrelevant one is not made so).
        for hit in &mut hits {
            if hit.similarity >= self.settings.min_similarity
                && self.gate.solved(&IndexedMessage::from_stored(&hit.message))
            {
                hit.similarity = (hit.similarity + SOLVED_BONUS).min(1.0);
            }
        }
        let hits = select_hits(hits, query.original_message_id, self.settings);
        let hits: Vec<(IndexedMessage, f32)> = hits
            .iter()
            .map(|hit| (IndexedMessage::from_stored(&hit.message), hit.similarity))
            .collect();
        let around = if self.settings.neighbors == 0 || hits.is_empty() {
            Vec::new()
        } else {
            self.around(embedding, &hits, &reach).await?
        };
        let expansion = Expansion {
            neighbors: self.settings.neighbors,
            window_secs: self.settings.neighbor_window_secs as f64,
        };
        let groups = hits
            .into_iter()
            .map(|(hit, similarity)| {
                let members = if self.settings.neighbors == 0 {
                    vec![(hit.clone(), Role::Hit)]
                } else {
                    conversation::conversation(&hit, &around, expansion, query.original_message_id)
                };
                SourceGroup {
                    hit_id: hit.id,
                    similarity,
                    messages: members
                        .into_iter()
                        .map(|(message, role)| {
                            let own = (role == Role::Hit).then_some(similarity);
                            SourceMessage::from_indexed(message, role, own)
                        })
                        .collect(),
                }
            })
            .collect();
        let stage = &crate::metrics::QUERY_STAGE_SECONDS;
        stage
            .with_label_values(&["embed"])
            .observe(embedded.as_secs_f64());
        stage
            .with_label_values(&["search"])
            .observe((searched - embedded).as_secs_f64());
        stage
            .with_label_values(&["expand"])
            .observe((started.elapsed() - searched).as_secs_f64());
        tracing::debug!(
            query_id = %query.query_id,
            embed_ms = embedded.as_millis() as u64,
            search_ms = (searched - embedded).as_millis() as u64,
            expand_ms = (started.elapsed() - searched).as_millis() as u64,
            "retrieval timings"
        );
        Ok(Retrieved { groups })
    }

    /// Everything the hits' conversations may contain, still inside `reach`: the messages of
    /// each hit's channel within the window around it, the messages linked to the hits (their
    /// replies, the messages they reply to and those messages' other replies, their threads),
    /// then the replies to those replies. Each with its similarity to the question
    /// (`relevance`).
    async fn around(
        &self,
        question: &[f32],
        hits: &[(IndexedMessage, f32)],
        reach: &Reach,
    ) -> Result<Vec<IndexedMessage>, StoreError> {
        let window = self.settings.neighbor_window_secs as f64;
        let mut alternatives: Vec<Filter> = hits
            .iter()
            .map(|(hit, _)| {
                index::window_filter(
                    hit.channel_id,
                    index::time_bucket(hit.epoch - window),
                    index::time_bucket(hit.epoch + window),
                )
            })
            .collect();
        let mut linked: Vec<MessageId> = Vec::new();
        for (hit, _) in hits {
            linked.push(hit.id);
            linked.extend(hit.reply_to);
            linked.extend(hit.thread_starter);
        }
        alternatives.push(index::linked_filter(&linked));
        let first = self.get_within(question, reach, alternatives).await?;
        // Second hop: replies to the replies of the hits.
        let hit_ids: HashSet<MessageId> = hits.iter().map(|(hit, _)| hit.id).collect();
        let replies: Vec<MessageId> = first
            .iter()
            .filter(|message| {
                message
                    .reply_to
                    .is_some_and(|parent| hit_ids.contains(&parent))
            })
            .map(|message| message.id)
            .collect();
        let mut all = first;
        if !replies.is_empty() {
            all.extend(
                self.get_within(question, reach, vec![index::linked_filter(&replies)])
                    .await?,
            );
        }
        Ok(all)
    }

    /// Every message matching any of `alternatives`, inside `reach` (at most 100 per
    /// alternative), with its similarity to `question` — one store query.
    async fn get_within(
        &self,
        question: &[f32],
        reach: &Reach,
        alternatives: Vec<Filter>,
    ) -> Result<Vec<IndexedMessage>, StoreError> {
        let count = alternatives.len();
        let filter = Filter::all_of([reach.filter(), Filter::either(alternatives)]);
        let found = self.store.query(question, &filter, 100 * count).await?;
        Ok(found
            .into_iter()
            .map(|hit| {
                let mut message = IndexedMessage::from_stored(&hit.message);
                message.relevance = Some(hit.similarity);
                message
            })
            .filter(|message| self.admits(reach, message))
            .collect())
    }

    /// Inside the asker's reach, and not kept out by the community's choices (a forgotten
    /// member, an excluded channel: filtered here even while their deletion is running).
    fn admits(&self, reach: &Reach, message: &IndexedMessage) -> bool {
        reach.admits(message) && self.gate.admits_indexed(message)
    }
}

#[cfg(test)]
mod tests;
