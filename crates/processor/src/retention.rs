//! `INDEX_RETENTION_DAYS`: messages older than that leave the index, at start and every hour
//! after. Every processor runs it (deleting what is already gone is harmless). A message whose
//! time is unknown (stored as 0) is kept: its age cannot be told.

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::supervise::every;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Field, Filter, VectorStore};

/// How often old messages are looked for.
pub const EVERY: Duration = Duration::from_secs(3600);

/// The messages older than `days` at `now` (seconds since the epoch).
pub fn older_than(days: u64, now: f64) -> Filter {
    Filter::Between(Field::Epoch, 1.0, now - days as f64 * 86_400.0)
}

/// Removes older messages until `stop` fires.
pub async fn run(
    store: Arc<dyn VectorStore>,
    days: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    info!(
        days,
        "messages older than the retention leave the index every hour"
    );
    every(EVERY, &stop, || async {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let before = store.count().await.ok();
        match store.delete_where(&older_than(days, now)).await {
            Ok(()) => {
                let after = store.count().await.ok();
                let removed = before.zip(after).map(|(b, a)| b.saturating_sub(a));
                info!(days, removed, "old messages removed from the index");
            }
            Err(err) => {
                warn!(error = %err, "could not remove old messages; trying again in an hour")
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{MemoryStore, StoredMessage};

    fn at(id: u64, epoch: f64) -> StoredMessage {
        StoredMessage {
            id: id.into(),
            document: String::new(),
            metadata: json!({"timestamp_epoch": epoch})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    #[tokio::test]
    async fn only_messages_older_than_the_retention_go_and_undated_ones_stay() {
        let now = 100.0 * 86_400.0;
        let store = MemoryStore::new();
        let messages = [
            at(1, 10.0 * 86_400.0), // old
            at(2, 95.0 * 86_400.0), // recent
            at(3, 0.0),             // undated
        ];
        store
            .upsert(&messages, &[vec![1.0], vec![1.0], vec![1.0]])
            .await
            .expect("upsert");
        store
            .delete_where(&older_than(30, now))
            .await
            .expect("delete");
        let left: Vec<u64> = store
            .get(&Filter::All, &[], None)
            .await
            .expect("get")
            .into_iter()
            .map(|message| message.id.get())
            .collect();
        assert_eq!(left, [2, 3], "the recent and the undated message");
    }
}
