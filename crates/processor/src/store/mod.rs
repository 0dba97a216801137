//! The vector store port: what ingestion and retrieval need of wherever message vectors live,
//! in no store's terms. One record per Discord message: id = `message_id`, document = its
//! text, its embedding, and flat metadata (the index format, [`crate::index`]); operations
//! select records with a store-neutral [`Filter`].
//!
//! Adapters: [`chroma`] (a Chroma server over HTTP, what the services run) and [`memory`]
//! (in the process, for pure tests of ranking). A new adapter is a folder here implementing
//! [`VectorStore`], plus the line that builds it.

pub mod chroma;
mod filter;
pub mod memory;

use std::collections::{BTreeMap, HashSet};

use rtfm_core::ids::MessageId;
use serde_json::{Map, Value};

pub use chroma::{ChromaStore, StoreConfig};
pub use filter::{Field, Filter, Scalar};
pub use memory::MemoryStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transport failure, timeout or 5xx/429 (and a refused token): try again later.
    #[error("Chroma at {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    /// 4xx: this request will never succeed as it is.
    #[error("Chroma rejected the request: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// One message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub document: String,
    pub metadata: Map<String, Value>,
}

/// A query hit: a stored message and its cosine similarity to the question.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub message: StoredMessage,
    pub similarity: f32,
}

/// Where message vectors live.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync {
    /// Where it is, for logs and `/readyz`.
    fn location(&self) -> &str;
    /// Whether it answers now.
    async fn heartbeat(&self) -> bool;
    /// Inserts or replaces `messages` with their `embeddings` (same order, unique ids).
    async fn upsert(
        &self,
        messages: &[StoredMessage],
        embeddings: &[Vec<f32>],
    ) -> Result<(), StoreError>;
    async fn delete(&self, ids: &[MessageId]) -> Result<(), StoreError>;
    /// Deletes every message `filter` selects (refused for [`Filter::All`]).
    async fn delete_where(&self, filter: &Filter) -> Result<(), StoreError>;
    /// The `n` messages nearest to `embedding` among those `filter` selects, nearest first.
    /// With `n` at least the number selected, every one of them with its similarity.
    async fn query(
        &self,
        embedding: &[f32],
        filter: &Filter,
        n: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    /// Messages `filter` selects (and, if any are given, among `ids`), at most `limit`.
    async fn get(
        &self,
        filter: &Filter,
        ids: &[MessageId],
        limit: Option<usize>,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    async fn count(&self) -> Result<usize, StoreError>;
    /// How many messages `filter` selects, by their value of `field` (absent: `""`); ids and
    /// metadata only, read in pages (a moderator's overview, a removal's count).
    async fn tally(
        &self,
        filter: &Filter,
        field: Field,
    ) -> Result<BTreeMap<String, usize>, StoreError>;
}

/// The value of `field` in `metadata`, as text (`""` when absent).
fn tally_key(metadata: &Map<String, Value>, field: Field) -> String {
    match metadata.get(field.key()) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What every adapter refuses in an upsert: vectors not one per message, an id twice.
fn check_upsert(messages: &[StoredMessage], embeddings: &[Vec<f32>]) -> Result<(), StoreError> {
    if embeddings.len() != messages.len() {
        return Err(StoreError::Rejected(format!(
            "{} embeddings for {} messages",
            embeddings.len(),
            messages.len()
        )));
    }
    let mut seen = HashSet::new();
    if let Some(message) = messages.iter().find(|message| !seen.insert(&message.id)) {
        return Err(StoreError::Rejected(format!(
            "id {} twice in one upsert",
            message.id
        )));
    }
    Ok(())
}

/// What every adapter refuses to delete: everything at once.
fn check_delete_where(filter: &Filter) -> Result<(), StoreError> {
    if *filter == Filter::All {
        return Err(StoreError::Rejected(
            "refusing to delete every message (an empty filter)".into(),
        ));
    }
    Ok(())
}
