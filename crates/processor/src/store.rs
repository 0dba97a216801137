//! The message index in a real Chroma server, through the `chromadb` crate (the client the
//! users named), with three gaps closed here:
//! - its `heartbeat()` still calls the removed `/api/v1` (410 Gone): we call `/api/v2/heartbeat`;
//! - it has no request timeouts: every call is bounded here;
//! - its errors are `anyhow` strings: we sort them into "Chroma is unavailable, retry" and
//!   "Chroma rejected this request" (4xx), which the ingestion loop handles differently.
//!
//! One record per Discord message: id = `message_id`, document = content (always stored — the
//! crate cannot read back `null` documents), embedding, and flat metadata.

use std::time::Duration;

use chromadb::client::{ChromaAuthMethod, ChromaClient, ChromaClientOptions, ChromaTokenHeader};
use chromadb::collection::{ChromaCollection, CollectionEntries, GetOptions, QueryOptions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

/// How to reach Chroma.
#[derive(Clone, clap::Args)]
pub struct StoreConfig {
    /// Chroma server URL.
    #[arg(
        long = "chroma-url",
        env = "CHROMA_URL",
        default_value = "http://localhost:8000"
    )]
    pub chroma_url: String,
    /// Collection holding the messages (created with cosine distance if missing).
    #[arg(
        long = "chroma-collection",
        env = "CHROMA_COLLECTION",
        default_value = "rtfm_messages"
    )]
    pub chroma_collection: String,
    /// Bearer token for a Chroma server with token auth.
    #[arg(long = "chroma-auth-token", env = "CHROMA_AUTH_TOKEN", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub chroma_auth_token: Option<SecretString>,
    /// Database in the token's tenant.
    #[arg(
        long = "chroma-database",
        env = "CHROMA_DATABASE",
        default_value = "default_database"
    )]
    pub chroma_database: String,
    /// Upper bound for one Chroma request.
    #[arg(
        long = "chroma-timeout-secs",
        env = "CHROMA_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub chroma_timeout_secs: u64,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("chroma_url", &self.chroma_url)
            .field("chroma_collection", &self.chroma_collection)
            .field(
                "chroma_auth_token",
                &self.chroma_auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field("chroma_database", &self.chroma_database)
            .finish()
    }
}

impl StoreConfig {
    pub fn new(url: &str, collection: &str) -> Self {
        Self {
            chroma_url: url.to_string(),
            chroma_collection: collection.to_string(),
            chroma_auth_token: None,
            chroma_database: "default_database".to_string(),
            chroma_timeout_secs: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transport failure, timeout or 5xx/429: try again later.
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
    pub id: String,
    pub document: String,
    pub metadata: Map<String, Value>,
}

/// A query hit: a stored message and its cosine similarity to the question.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub message: StoredMessage,
    pub similarity: f32,
}

/// The collection of indexed messages.
pub struct MessageStore {
    client: ChromaClient,
    collection: ChromaCollection,
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl MessageStore {
    /// Connects and gets or creates the collection (cosine space).
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.chroma_url.trim_end_matches('/').to_string();
        let timeout = Duration::from_secs(config.chroma_timeout_secs.max(1));
        let auth = match &config.chroma_auth_token {
            Some(token) => ChromaAuthMethod::TokenAuth {
                token: token.expose_secret().to_string(),
                header: ChromaTokenHeader::Authorization,
            },
            None => ChromaAuthMethod::None,
        };
        let options = ChromaClientOptions {
            url: Some(url.clone()),
            auth,
            database: config.chroma_database.clone(),
        };
        let client = bounded(&url, timeout, ChromaClient::new(options)).await?;
        let mut metadata = Map::new();
        metadata.insert("hnsw:space".into(), json!("cosine"));
        let collection = bounded(
            &url,
            timeout,
            client.get_or_create_collection(&config.chroma_collection, Some(metadata)),
        )
        .await?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| StoreError::Unavailable {
                url: url.clone(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            client,
            collection,
            http,
            url,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v2/heartbeat` (the crate's own `heartbeat()` calls the removed v1 API).
    pub async fn heartbeat(&self) -> bool {
        let url = format!("{}/api/v2/heartbeat", self.url);
        matches!(self.http.get(url).send().await, Ok(response) if response.status().is_success())
    }

    /// Inserts or replaces `messages` with their `embeddings` (same order).
    pub async fn upsert(
        &self,
        messages: &[StoredMessage],
        embeddings: Vec<Vec<f32>>,
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let entries = CollectionEntries {
            ids: messages.iter().map(|message| message.id.as_str()).collect(),
            metadatas: Some(
                messages
                    .iter()
                    .map(|message| message.metadata.clone())
                    .collect(),
            ),
            documents: Some(
                messages
                    .iter()
                    .map(|message| message.document.as_str())
                    .collect(),
            ),
            embeddings: Some(embeddings),
        };
        bounded(
            &self.url,
            self.timeout,
            self.collection.upsert(entries, None),
        )
        .await?;
        Ok(())
    }

    pub async fn delete(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        bounded(
            &self.url,
            self.timeout,
            self.collection.delete(Some(ids), None, None),
        )
        .await
    }

    /// The `n` nearest messages to `embedding` that match `filter`.
    pub async fn query(
        &self,
        embedding: Vec<f32>,
        filter: Value,
        n: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let options = QueryOptions {
            query_embeddings: Some(vec![embedding]),
            query_texts: None,
            n_results: Some(n.max(1)),
            where_metadata: Some(filter),
            where_document: None,
            include: Some(vec!["metadatas", "documents", "distances"]),
        };
        let result = bounded(
            &self.url,
            self.timeout,
            self.collection.query(options, None),
        )
        .await?;
        let ids = result.ids.into_iter().next().unwrap_or_default();
        let documents = result
            .documents
            .and_then(|d| d.into_iter().next())
            .unwrap_or_default();
        let metadatas = result
            .metadatas
            .and_then(|m| m.into_iter().next())
            .unwrap_or_default();
        let distances = result
            .distances
            .and_then(|d| d.into_iter().next())
            .unwrap_or_default();
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(index, id)| Hit {
                message: StoredMessage {
                    id,
                    document: documents.get(index).cloned().unwrap_or_default(),
                    metadata: metadatas.get(index).cloned().flatten().unwrap_or_default(),
                },
                // Cosine distance is 1 - similarity.
                similarity: 1.0 - distances.get(index).copied().unwrap_or(1.0),
            })
            .collect())
    }

    /// Messages matching `filter`, at most `limit`.
    pub async fn get(
        &self,
        filter: Option<Value>,
        ids: Vec<String>,
        limit: Option<usize>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let options = GetOptions {
            ids,
            where_metadata: filter,
            limit,
            offset: None,
            where_document: None,
            include: Some(vec!["metadatas".to_string(), "documents".to_string()]),
        };
        let result = bounded(&self.url, self.timeout, self.collection.get(options)).await?;
        let documents = result.documents.unwrap_or_default();
        let metadatas = result.metadatas.unwrap_or_default();
        Ok(result
            .ids
            .into_iter()
            .enumerate()
            .map(|(index, id)| StoredMessage {
                id,
                document: documents.get(index).cloned().flatten().unwrap_or_default(),
                metadata: metadatas.get(index).cloned().flatten().unwrap_or_default(),
            })
            .collect())
    }

    /// Like [`MessageStore::get`] (no ids), with each message's stored vector.
    pub async fn get_with_vectors(
        &self,
        filter: Value,
        limit: usize,
    ) -> Result<Vec<(StoredMessage, Vec<f32>)>, StoreError> {
        let options = GetOptions {
            ids: Vec::new(),
            where_metadata: Some(filter),
            limit: Some(limit),
            offset: None,
            where_document: None,
            include: Some(vec![
                "metadatas".to_string(),
                "documents".to_string(),
                "embeddings".to_string(),
            ]),
        };
        let result = bounded(&self.url, self.timeout, self.collection.get(options)).await?;
        let documents = result.documents.unwrap_or_default();
        let metadatas = result.metadatas.unwrap_or_default();
        let embeddings = result.embeddings.unwrap_or_default();
        Ok(result
            .ids
            .into_iter()
            .enumerate()
            .map(|(index, id)| {
                (
                    StoredMessage {
                        id,
                        document: documents.get(index).cloned().flatten().unwrap_or_default(),
                        metadata: metadatas.get(index).cloned().flatten().unwrap_or_default(),
                    },
                    embeddings.get(index).cloned().flatten().unwrap_or_default(),
                )
            })
            .collect())
    }

    pub async fn count(&self) -> Result<usize, StoreError> {
        bounded(&self.url, self.timeout, self.collection.count()).await
    }

    /// Drops the whole collection (tests and `processor eval`).
    pub async fn drop_collection(self) -> Result<(), StoreError> {
        let name = self.collection.name().to_string();
        bounded(
            &self.url,
            self.timeout,
            self.client.delete_collection(&name),
        )
        .await
    }
}

/// Runs one crate call under our timeout and sorts its error.
async fn bounded<T>(
    url: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(classify(url, &err)),
        Err(_) => Err(StoreError::Unavailable {
            url: url.to_string(),
            reason: format!("no answer within {timeout:?}"),
        }),
    }
}

/// The crate reports HTTP errors as `"<status> <reason>: <body>"` and transport errors as
/// reqwest errors; anything else (a body it cannot decode, a request it refuses to build) is
/// neither. A 4xx other than 408/429 is a rejection, and so is an error that is neither an HTTP
/// status nor a transport failure (retrying the same request cannot change it); a transport
/// failure, 408, 429 or 5xx is unavailability.
fn classify(url: &str, err: &anyhow::Error) -> StoreError {
    let text = format!("{err:#}");
    let status: Option<u16> = text.get(..3).and_then(|prefix| prefix.parse().ok());
    let unavailable = || StoreError::Unavailable {
        url: url.to_string(),
        reason: text.clone(),
    };
    match status {
        Some(code) if (400..500).contains(&code) && code != 408 && code != 429 => {
            StoreError::Rejected(text)
        }
        Some(_) => unavailable(),
        None if is_transport_failure(&text) => unavailable(),
        None => StoreError::Rejected(text),
    }
}

/// reqwest/hyper's words for "the request did not get an answer".
fn is_transport_failure(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "error sending request",
        "connect",
        "timed out",
        "timeout",
        "connection",
        "broken pipe",
        "dns error",
        "incomplete message",
        "unexpected eof",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_rejections_and_the_rest_is_unavailability() {
        let rejected = classify("u", &anyhow::anyhow!("400 Bad Request: dimension mismatch"));
        assert!(matches!(rejected, StoreError::Rejected(_)));
        for text in [
            "503 Service Unavailable: busy",
            "429 Too Many Requests: slow down",
            "error sending request: connection refused",
            "error trying to connect: tcp connect error",
            "operation timed out",
        ] {
            assert!(
                classify("u", &anyhow::anyhow!(text.to_string())).is_unavailable(),
                "{text}"
            );
        }
        // Neither a status nor a transport failure: the same request would fail again.
        for text in [
            "error decoding response body: expected value at line 1",
            "invalid embedding dimension",
        ] {
            assert!(
                matches!(
                    classify("u", &anyhow::anyhow!(text.to_string())),
                    StoreError::Rejected(_)
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut config = StoreConfig::new("http://x", "c");
        config.chroma_auth_token = Some(SecretString::from("chroma-secret-123".to_string()));
        assert!(!format!("{config:?}").contains("chroma-secret-123"));
    }
}
