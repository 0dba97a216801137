//! Finding the earlier messages that answer a question.
//!
//! 1. The question is embedded and the `k` nearest messages are fetched from Chroma **inside
//!    the question's scope** (its guild, by default its channel; a DM only its DM channel).
//!    Scope is a `where` filter built from the query's `guild_id`/`channel_id` as stamped by the
//!    bot; the processor never widens it, so no text crosses a guild (see [`scope_filter`]).
//! 2. Hits below the similarity threshold, the triggering message itself and duplicates are
//!    dropped; at most `max_sources` remain.
//! 3. Each hit is expanded with its neighbours in the same channel (± `neighbors` messages
//!    within ± `neighbor_window`), because the answer to a question is usually the reply to it,
//!    which rarely repeats its words.

use std::collections::HashSet;
use std::sync::Arc;

use rtfm_core::{BotQuery, DiscordMessage};
use serde_json::{json, Map, Value};

use crate::embedding::{EmbedError, Embedder};
use crate::store::{Hit, MessageStore, StoreError, StoredMessage};

/// How wide a question looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Only the channel the question was asked in (default).
    Channel,
    /// The whole guild the question was asked in.
    Guild,
}

/// Retrieval knobs (defaults from the seed bot).
#[derive(Debug, Clone, clap::Args)]
pub struct RetrievalSettings {
    /// channel: only the asking channel; guild: the whole guild. DMs only ever see their DM.
    #[arg(
        long = "retrieval-scope",
        env = "RETRIEVAL_SCOPE",
        value_enum,
        default_value = "channel"
    )]
    pub scope: Scope,
    /// Nearest messages fetched per question.
    #[arg(
        long = "retrieval-candidates",
        env = "RETRIEVAL_CANDIDATES",
        default_value_t = 10
    )]
    pub candidates: usize,
    /// Cosine similarity below which a hit is ignored.
    #[arg(
        long = "retrieval-min-similarity",
        env = "RETRIEVAL_MIN_SIMILARITY",
        default_value_t = 0.3
    )]
    pub min_similarity: f32,
    /// Hits kept as sources.
    #[arg(
        long = "retrieval-max-sources",
        env = "RETRIEVAL_MAX_SOURCES",
        default_value_t = 5
    )]
    pub max_sources: usize,
    /// Messages before and after a hit added as its context.
    #[arg(
        long = "retrieval-neighbors",
        env = "RETRIEVAL_NEIGHBORS",
        default_value_t = 3
    )]
    pub neighbors: usize,
    /// Only neighbours within this many seconds of the hit.
    #[arg(
        long = "retrieval-neighbor-window-secs",
        env = "RETRIEVAL_NEIGHBOR_WINDOW_SECS",
        default_value_t = 600
    )]
    pub neighbor_window_secs: u64,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            scope: Scope::Channel,
            candidates: 10,
            min_similarity: 0.3,
            max_sources: 5,
            neighbors: 3,
            neighbor_window_secs: 600,
        }
    }
}

/// One message shown to the model or quoted to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub message_id: String,
    pub channel_id: String,
    pub guild_id: Option<String>,
    pub username: String,
    pub timestamp: String,
    pub content: String,
    /// Similarity to the question if this message was itself a hit.
    pub similarity: Option<f32>,
    /// The message this one replies to, when known.
    pub reply_to: Option<String>,
}

impl SourceMessage {
    fn from_stored(stored: &StoredMessage, similarity: Option<f32>) -> Self {
        let text = |key: &str| {
            stored
                .metadata
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Self {
            message_id: stored.id.clone(),
            channel_id: text("channel_id").unwrap_or_default(),
            guild_id: text("guild_id"),
            username: text("username").unwrap_or_else(|| "someone".to_string()),
            timestamp: text("timestamp").unwrap_or_default(),
            content: stored.document.clone(),
            similarity,
            reply_to: text("reply_to_message_id"),
        }
    }

    /// `https://discord.com/channels/{guild|@me}/{channel}/{message}`.
    pub fn jump_link(&self) -> String {
        jump_link(self.guild_id.as_deref(), &self.channel_id, &self.message_id)
    }
}

pub fn jump_link(guild_id: Option<&str>, channel_id: &str, message_id: &str) -> String {
    format!(
        "https://discord.com/channels/{}/{channel_id}/{message_id}",
        guild_id.unwrap_or("@me")
    )
}

/// A hit with its conversation around it, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGroup {
    pub hit_id: String,
    pub similarity: f32,
    pub messages: Vec<SourceMessage>,
}

impl SourceGroup {
    /// The group's messages in answer order: the hit, then replies addressed to its author,
    /// then the other messages after it, then the ones before it (nearest first).
    pub fn ranked(&self) -> Vec<&SourceMessage> {
        let position = self
            .messages
            .iter()
            .position(|message| message.message_id == self.hit_id)
            .unwrap_or(0);
        let Some(hit) = self.messages.get(position) else {
            return Vec::new();
        };
        let after = &self.messages[position + 1..];
        let is_answer = |message: &&SourceMessage| {
            message.reply_to.as_deref() == Some(hit.message_id.as_str())
                || mentions_name(&message.content, &hit.username)
        };
        std::iter::once(hit)
            .chain(after.iter().filter(is_answer))
            .chain(after.iter().filter(|message| !is_answer(message)))
            .chain(self.messages[..position].iter().rev())
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

    /// Every message once, groups in rank order, numbered from 1 by position.
    pub fn numbered(&self) -> Vec<SourceMessage> {
        let mut seen = HashSet::new();
        self.groups
            .iter()
            .flat_map(|group| group.messages.iter())
            .filter(|message| seen.insert(message.message_id.clone()))
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

/// Chroma metadata of one message. Flat scalars only (Chroma's rule).
pub fn metadata_for(message: &DiscordMessage) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(guild_id) = &message.guild_id {
        metadata.insert("guild_id".into(), json!(guild_id));
    }
    metadata.insert("is_dm".into(), json!(message.guild_id.is_none()));
    metadata.insert("channel_id".into(), json!(message.channel_id));
    metadata.insert("user_id".into(), json!(message.user_id));
    metadata.insert("username".into(), json!(message.username));
    metadata.insert("timestamp".into(), json!(message.timestamp));
    let epoch = message
        .timestamp_utc()
        .map(|time| time.timestamp_millis() as f64 / 1000.0)
        .unwrap_or_default();
    metadata.insert("timestamp_epoch".into(), json!(epoch));
    metadata.insert("time_bucket".into(), json!(time_bucket(epoch)));
    metadata.insert("message_id".into(), json!(message.message_id));
    if let Some(name) = message.channel_name() {
        metadata.insert("channel_name".into(), json!(name));
    }
    if let Some(reply_to) = &message.reply_to_message_id {
        metadata.insert("reply_to_message_id".into(), json!(reply_to));
    }
    metadata
}

/// Seconds per `time_bucket`: neighbourhoods are fetched with an integer `$in` on buckets
/// (an inverted-index lookup in Chroma) instead of a float range over `timestamp_epoch`.
const TIME_BUCKET_SECS: f64 = 60.0;

fn time_bucket(epoch: f64) -> i64 {
    (epoch / TIME_BUCKET_SECS).floor() as i64
}

/// The `where` filter that confines a question to what its asker may see.
///
/// - guild + channel scope: that guild **and** that channel;
/// - guild + guild scope: that guild;
/// - no guild (a DM): that channel **and** `is_dm` — so a query that omits its guild cannot
///   reach a guild channel by naming its id.
pub fn scope_filter(guild_id: Option<&str>, channel_id: &str, scope: Scope) -> Value {
    match (guild_id, scope) {
        (Some(guild), Scope::Channel) => {
            json!({"$and": [{"guild_id": {"$eq": guild}}, {"channel_id": {"$eq": channel_id}}]})
        }
        (Some(guild), Scope::Guild) => json!({"guild_id": {"$eq": guild}}),
        (None, _) => {
            json!({"$and": [{"is_dm": {"$eq": true}}, {"channel_id": {"$eq": channel_id}}]})
        }
    }
}

/// Keeps hits above the threshold, never the triggering message, best first, at most `max`.
pub fn select_hits(
    mut hits: Vec<Hit>,
    excluded_id: &str,
    settings: &RetrievalSettings,
) -> Vec<Hit> {
    hits.retain(|hit| hit.similarity >= settings.min_similarity && hit.message.id != excluded_id);
    hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    let mut seen = HashSet::new();
    hits.retain(|hit| seen.insert(hit.message.id.clone()));
    hits.truncate(settings.max_sources);
    hits
}

fn epoch_of(message: &StoredMessage) -> f64 {
    message
        .metadata
        .get("timestamp_epoch")
        .and_then(Value::as_f64)
        .unwrap_or_default()
}

/// The hit and up to `n` messages either side of it, in time order, from `candidates` (the
/// channel's messages near the hit). The excluded (triggering) message is never included.
pub fn neighbourhood(
    hit: &StoredMessage,
    mut candidates: Vec<StoredMessage>,
    n: usize,
    excluded_id: &str,
) -> Vec<StoredMessage> {
    candidates.retain(|message| message.id != excluded_id);
    if !candidates.iter().any(|message| message.id == hit.id) {
        candidates.push(hit.clone());
    }
    candidates.sort_by(|a, b| {
        epoch_of(a)
            .total_cmp(&epoch_of(b))
            .then_with(|| snowflake_order(&a.id, &b.id))
    });
    let position = candidates
        .iter()
        .position(|message| message.id == hit.id)
        .unwrap_or(0);
    let author = hit
        .metadata
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let start = position.saturating_sub(n);
    let mut keep: Vec<bool> = (0..candidates.len())
        .map(|index| index >= start && index <= position + n)
        .collect();
    // Later replies addressed to the hit's author (Discord replies, or IRC-style "nick: …")
    // are where answers are, even when other conversations interleave.
    let mut addressed = 0;
    for index in position + 1..candidates.len() {
        if addressed >= 2 * n {
            break;
        }
        if !keep[index] && addresses(&candidates[index], &hit.id, author) {
            keep[index] = true;
            addressed += 1;
        }
    }
    candidates
        .into_iter()
        .zip(keep)
        .filter_map(|(message, kept)| kept.then_some(message))
        .collect()
}

/// Whether `message` answers the hit: a Discord reply to it, or text addressed to its author
/// by name ("alice: try…", "alice, try…", "@alice try…").
fn addresses(message: &StoredMessage, hit_id: &str, author: &str) -> bool {
    if message
        .metadata
        .get("reply_to_message_id")
        .and_then(Value::as_str)
        == Some(hit_id)
    {
        return true;
    }
    mentions_name(&message.document, author)
}

/// `text` names `author` as a whole word (case-insensitive); names shorter than 3 characters
/// never match (too many false positives).
pub fn mentions_name(text: &str, author: &str) -> bool {
    let name = author.split('#').next().unwrap_or(author).to_lowercase();
    if name.chars().count() < 3 {
        return false;
    }
    let text = text.to_lowercase();
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
        boundary(before) && boundary(after)
    })
}

/// Snowflakes grow with time; compare them as numbers (longer = larger).
fn snowflake_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Embeds questions and looks them up in the store.
#[derive(Clone)]
pub struct Retriever {
    pub store: Arc<MessageStore>,
    pub embedder: Embedder,
    pub settings: RetrievalSettings,
}

impl Retriever {
    pub async fn retrieve(&self, query: &BotQuery) -> Result<Retrieved, RetrieveError> {
        let filter = scope_filter(
            query.guild_id.as_deref(),
            &query.channel_id,
            self.settings.scope,
        );
        let started = std::time::Instant::now();
        let embedding = self.embedder.embed_one(&query.question).await?;
        let embedded = started.elapsed();
        // One extra candidate in case the triggering message is among them.
        let hits = self
            .store
            .query(embedding, filter.clone(), self.settings.candidates + 1)
            .await?;
        let searched = started.elapsed();
        let hits = select_hits(hits, &query.original_message_id, &self.settings);
        // Each hit's neighbourhood is one Chroma `get`; run them concurrently.
        // All neighbourhoods in one Chroma `get` (one `$or` of per-hit windows), then split.
        let around = if self.settings.neighbors == 0 || hits.is_empty() {
            Vec::new()
        } else {
            self.around(&hits, &filter).await?
        };
        let window = self.settings.neighbor_window_secs as f64;
        let neighbourhoods: Vec<Vec<StoredMessage>> = hits
            .iter()
            .map(|hit| {
                if self.settings.neighbors == 0 {
                    return vec![hit.message.clone()];
                }
                let channel = hit.message.metadata.get("channel_id");
                let epoch = epoch_of(&hit.message);
                let candidates = around
                    .iter()
                    .filter(|message| {
                        message.metadata.get("channel_id") == channel
                            && (epoch_of(message) - epoch).abs() <= window
                    })
                    .cloned()
                    .collect();
                neighbourhood(
                    &hit.message,
                    candidates,
                    self.settings.neighbors,
                    &query.original_message_id,
                )
            })
            .collect();
        tracing::debug!(
            query_id = %query.query_id,
            embed_ms = embedded.as_millis() as u64,
            search_ms = (searched - embedded).as_millis() as u64,
            expand_ms = (started.elapsed() - searched).as_millis() as u64,
            hits = hits.len(),
            "retrieval timings"
        );
        let groups = hits
            .iter()
            .zip(neighbourhoods)
            .map(|(hit, messages)| SourceGroup {
                hit_id: hit.message.id.clone(),
                similarity: hit.similarity,
                messages: messages
                    .iter()
                    .map(|message| {
                        let similarity = (message.id == hit.message.id).then_some(hit.similarity);
                        SourceMessage::from_stored(message, similarity)
                    })
                    .collect(),
            })
            .collect();
        Ok(Retrieved { groups })
    }

    /// The messages of the hit's channel within the window around it, still inside `scope`.
    async fn around(&self, hits: &[Hit], scope: &Value) -> Result<Vec<StoredMessage>, StoreError> {
        let window = self.settings.neighbor_window_secs as f64;
        let windows: Vec<Value> = hits
            .iter()
            .map(|hit| {
                let epoch = epoch_of(&hit.message);
                let channel = hit
                    .message
                    .metadata
                    .get("channel_id")
                    .cloned()
                    .unwrap_or(Value::Null);
                let buckets: Vec<i64> =
                    (time_bucket(epoch - window)..=time_bucket(epoch + window)).collect();
                json!({"$and": [
                    {"channel_id": {"$eq": channel}},
                    {"time_bucket": {"$in": buckets}},
                ]})
            })
            .collect();
        let count = windows.len();
        // Chroma wants at least two operands in `$or`.
        let windows = if count == 1 {
            windows.into_iter().next().unwrap_or(Value::Null)
        } else {
            json!({ "$or": windows })
        };
        let filter = json!({"$and": [scope, windows]});
        self.store
            .get(Some(filter), Vec::new(), Some(100 * count))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, epoch: f64) -> StoredMessage {
        let mut metadata = Map::new();
        metadata.insert("timestamp_epoch".into(), json!(epoch));
        metadata.insert("time_bucket".into(), json!(time_bucket(epoch)));
        metadata.insert("channel_id".into(), json!("5"));
        StoredMessage {
            id: id.into(),
            document: format!("text {id}"),
            metadata,
        }
    }

    fn hit(id: &str, similarity: f32) -> Hit {
        Hit {
            message: stored(id, 0.0),
            similarity,
        }
    }

    #[test]
    fn guild_channel_scope_requires_both() {
        assert_eq!(
            scope_filter(Some("1"), "2", Scope::Channel),
            json!({"$and": [{"guild_id": {"$eq": "1"}}, {"channel_id": {"$eq": "2"}}]})
        );
        assert_eq!(
            scope_filter(Some("1"), "2", Scope::Guild),
            json!({"guild_id": {"$eq": "1"}})
        );
    }

    #[test]
    fn a_dm_only_sees_its_dm_channel_even_with_guild_scope() {
        for scope in [Scope::Channel, Scope::Guild] {
            assert_eq!(
                scope_filter(None, "9", scope),
                json!({"$and": [{"is_dm": {"$eq": true}}, {"channel_id": {"$eq": "9"}}]})
            );
        }
    }

    #[test]
    fn hits_below_threshold_and_the_trigger_itself_are_dropped() {
        let settings = RetrievalSettings {
            max_sources: 2,
            ..Default::default()
        };
        let kept = select_hits(
            vec![
                hit("1", 0.2),
                hit("2", 0.9),
                hit("3", 0.5),
                hit("4", 0.7),
                hit("2", 0.9),
            ],
            "4",
            &settings,
        );
        let ids: Vec<_> = kept.iter().map(|hit| hit.message.id.as_str()).collect();
        assert_eq!(ids, vec!["2", "3"]);
    }

    #[test]
    fn neighbourhood_takes_n_either_side_in_time_order_without_the_trigger() {
        let candidates: Vec<_> = (1..=9).map(|i| stored(&i.to_string(), i as f64)).collect();
        let around = neighbourhood(&stored("5", 5.0), candidates.clone(), 2, "6");
        let ids: Vec<_> = around.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec!["3", "4", "5", "7", "8"]);
        let edge = neighbourhood(&stored("1", 1.0), candidates, 2, "x");
        assert_eq!(
            edge.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            vec!["1", "2", "3"]
        );
    }

    #[test]
    fn names_match_as_whole_words_only() {
        assert!(mentions_name("yohannes, why not WinRAR?", "yohannes"));
        assert!(mentions_name("try this @Alice", "alice#1234"));
        assert!(!mentions_name("malice aforethought", "alice"));
        assert!(!mentions_name("bo: hi", "bo"), "short names never match");
    }

    #[test]
    fn later_replies_addressed_to_the_author_join_the_neighbourhood() {
        let mut candidates: Vec<_> = (1..=12).map(|i| stored(&i.to_string(), i as f64)).collect();
        candidates[9].document = "asker: use unrar".into();
        let mut hit = stored("3", 3.0);
        hit.metadata.insert("username".into(), json!("asker"));
        candidates[2] = hit.clone();
        let around = neighbourhood(&hit, candidates, 1, "x");
        let ids: Vec<_> = around.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec!["2", "3", "4", "10"]);
    }

    #[test]
    fn a_group_ranks_the_hit_then_answers_then_the_rest() {
        let message = |id: &str, user: &str, content: &str| SourceMessage {
            message_id: id.into(),
            channel_id: "5".into(),
            guild_id: None,
            username: user.into(),
            timestamp: String::new(),
            content: content.into(),
            similarity: None,
            reply_to: None,
        };
        let group = SourceGroup {
            hit_id: "2".into(),
            similarity: 0.9,
            messages: vec![
                message("1", "x", "before"),
                message("2", "asker", "how?"),
                message("3", "y", "unrelated"),
                message("4", "z", "asker: like this"),
            ],
        };
        let ids: Vec<_> = group
            .ranked()
            .into_iter()
            .map(|m| m.message_id.as_str())
            .collect();
        assert_eq!(ids, vec!["2", "4", "3", "1"]);
    }

    #[test]
    fn jump_links_use_me_for_dms() {
        assert_eq!(
            jump_link(Some("1"), "2", "3"),
            "https://discord.com/channels/1/2/3"
        );
        assert_eq!(
            jump_link(None, "2", "3"),
            "https://discord.com/channels/@me/2/3"
        );
    }

    #[test]
    fn numbered_sources_list_each_message_once() {
        let message = |id: &str| SourceMessage {
            message_id: id.into(),
            channel_id: "5".into(),
            guild_id: None,
            username: "u".into(),
            timestamp: String::new(),
            content: String::new(),
            similarity: None,
            reply_to: None,
        };
        let retrieved = Retrieved {
            groups: vec![
                SourceGroup {
                    hit_id: "2".into(),
                    similarity: 0.9,
                    messages: vec![message("1"), message("2"), message("3")],
                },
                SourceGroup {
                    hit_id: "3".into(),
                    similarity: 0.8,
                    messages: vec![message("2"), message("3"), message("4")],
                },
            ],
        };
        let ids: Vec<_> = retrieved
            .numbered()
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(ids, vec!["1", "2", "3", "4"]);
        assert!((retrieved.best_similarity() - 0.9).abs() < 1e-6);
    }
}
