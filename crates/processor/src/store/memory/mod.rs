//! The [`VectorStore`] in this process's memory: exact cosine search over every stored vector.
//! For tests of ranking and expansion that need no server; nothing the services run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rtfm_core::ids::MessageId;

use super::{
    check_delete_where, check_upsert, tally_key, Field, Filter, Hit, StoreError, StoredMessage,
    VectorStore,
};

/// Messages and their vectors, by id.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<MessageId, (StoredMessage, Vec<f32>)>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<MessageId, (StoredMessage, Vec<f32>)>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Cosine similarity (0 for a zero vector).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 {
        0.0
    } else {
        dot / norms
    }
}

#[async_trait::async_trait]
impl VectorStore for MemoryStore {
    fn location(&self) -> &str {
        "memory"
    }

    async fn heartbeat(&self) -> bool {
        true
    }

    async fn upsert(
        &self,
        messages: &[StoredMessage],
        embeddings: &[Vec<f32>],
    ) -> Result<(), StoreError> {
        check_upsert(messages, embeddings)?;
        let mut records = self.records();
        for (message, embedding) in messages.iter().zip(embeddings) {
            records.insert(message.id, (message.clone(), embedding.clone()));
        }
        Ok(())
    }

    async fn delete(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        let mut records = self.records();
        for id in ids {
            records.remove(id);
        }
        Ok(())
    }

    async fn delete_where(&self, filter: &Filter) -> Result<(), StoreError> {
        check_delete_where(filter)?;
        self.records()
            .retain(|_, (message, _)| !filter.matches(&message.metadata));
        Ok(())
    }

    async fn query(
        &self,
        embedding: &[f32],
        filter: &Filter,
        n: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let mut hits: Vec<Hit> = self
            .records()
            .values()
            .filter(|(message, _)| filter.matches(&message.metadata))
            .map(|(message, vector)| Hit {
                message: message.clone(),
                similarity: cosine(embedding, vector),
            })
            .collect();
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        hits.truncate(n.max(1));
        Ok(hits)
    }

    async fn get(
        &self,
        filter: &Filter,
        ids: &[MessageId],
        limit: Option<usize>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self
            .records()
            .values()
            .map(|(message, _)| message)
            .filter(|message| ids.is_empty() || ids.contains(&message.id))
            .filter(|message| filter.matches(&message.metadata))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.records().len())
    }

    async fn tally(
        &self,
        filter: &Filter,
        field: Field,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for (message, _) in self.records().values() {
            if filter.matches(&message.metadata) {
                *counts
                    .entry(tally_key(&message.metadata, field))
                    .or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Field;

    fn message(id: u64, channel: &str) -> StoredMessage {
        StoredMessage {
            id: id.into(),
            document: format!("text {id}"),
            metadata: json!({"channel_id": channel, "user_id": "42"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[tokio::test]
    async fn it_finds_the_nearest_inside_the_filter_and_deletes_by_filter() {
        let store = MemoryStore::new();
        store
            .upsert(
                &[message(1, "5"), message(2, "5"), message(3, "6")],
                &[vec![1.0, 0.0], vec![0.6, 0.8], vec![1.0, 0.0]],
            )
            .await
            .expect("upsert");
        let in_five = Filter::any_of(Field::Channel, ["5"]);
        let hits = store.query(&[1.0, 0.0], &in_five, 10).await.expect("query");
        let ids: Vec<u64> = hits.iter().map(|hit| hit.message.id.get()).collect();
        assert_eq!(ids, [1, 2]);
        assert!((hits[1].similarity - 0.6).abs() < 1e-6);
        assert!(
            store.delete_where(&Filter::All).await.is_err(),
            "never everything"
        );
        store.delete_where(&in_five).await.expect("delete");
        assert_eq!(store.count().await.expect("count"), 1);
        assert!(store.upsert(&[message(4, "5")], &[]).await.is_err());
    }
}
