//! The [`VectorStore`] in a real Chroma server, over its HTTP API (`/api/v2`, the only one
//! Chroma 1.x serves), with one `reqwest` client: one connection pool, one set of TLS roots.
//!
//! This replaced the `chromadb` crate (2.3), whose client builds a pool of 128 HTTP clients at
//! start (most of the processor's resident memory; decision 0002), still calls the removed
//! `/api/v1` for its heartbeat, has no request timeouts and reports errors as strings. Here
//! every call is bounded by `CHROMA_TIMEOUT_SECS`, and errors are sorted by their HTTP status
//! into "Chroma is unavailable, retry" (transport, timeout, 408, 429, 5xx) and "Chroma
//! rejected this request" (other 4xx, or an answer that is not what the API documents), which
//! the ingestion loop handles differently. A [`Filter`] becomes a `where` here and nowhere
//! else ([`wire::to_where`]).
mod config;
mod wire;

use std::time::Duration;

use rtfm_core::ids::MessageId;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{
    check_delete_where, check_upsert, tally_key, Field, Filter, Hit, StoreError, StoredMessage,
    VectorStore,
};
pub use config::StoreConfig;
use wire::{
    classify_status, first_row, nth, to_where, transport_error, Collection, GetAnswer, Identity,
    QueryAnswer,
};

/// The collection of indexed messages in Chroma.
pub struct ChromaStore {
    http: reqwest::Client,
    url: String,
    /// `{url}/api/v2/tenants/{tenant}/databases/{database}`.
    database_url: String,
    /// `{database_url}/collections/{id}`.
    collection_url: String,
    collection_name: String,
    token: Option<SecretString>,
}

impl ChromaStore {
    /// Connects and gets or creates the collection (cosine space).
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.chroma_url.trim_end_matches('/').to_string();
        let timeout = Duration::from_secs(config.chroma_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|err| StoreError::Unavailable {
                url: url.clone(),
                reason: err.to_string(),
            })?;
        let mut store = Self {
            http,
            database_url: String::new(),
            collection_url: String::new(),
            collection_name: config.chroma_collection.clone(),
            token: config.chroma_auth_token.clone(),
            url,
        };
        // A token names its tenant; "*" (no auth) means the default one.
        let identity: Identity = store
            .call(
                reqwest::Method::GET,
                &format!("{}/api/v2/auth/identity", store.url),
                None,
            )
            .await?;
        let tenant = match (&config.chroma_tenant, identity.tenant.as_str()) {
            (Some(tenant), _) => tenant.clone(),
            (None, "*") => "default_tenant".to_string(),
            (None, tenant) => tenant.to_string(),
        };
        store.database_url = format!(
            "{}/api/v2/tenants/{tenant}/databases/{}",
            store.url, config.chroma_database
        );
        store
            .ensure_database(&tenant, &config.chroma_database)
            .await?;
        let collection: Collection = store
            .call(
                reqwest::Method::POST,
                &format!("{}/collections", store.database_url),
                Some(json!({
                    "name": config.chroma_collection,
                    "metadata": {"hnsw:space": "cosine"},
                    "get_or_create": true,
                })),
            )
            .await?;
        store.collection_url = format!("{}/collections/{}", store.database_url, collection.id);
        Ok(store)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get_records(
        &self,
        filter: &Filter,
        ids: &[MessageId],
        limit: Option<usize>,
        include: &[&str],
    ) -> Result<GetAnswer, StoreError> {
        let mut body = json!({ "include": include });
        if !ids.is_empty() {
            body["ids"] = json!(ids);
        }
        if let Some(filter) = to_where(filter) {
            body["where"] = filter;
        }
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        self.call(
            reqwest::Method::POST,
            &format!("{}/get", self.collection_url),
            Some(body),
        )
        .await
    }

    /// Creates `database` in `tenant` if it is missing (a tenant that is missing is an error
    /// naming it: creating tenants is the operator's call).
    async fn ensure_database(&self, tenant: &str, database: &str) -> Result<(), StoreError> {
        let tenant_url = format!("{}/api/v2/tenants/{tenant}", self.url);
        match self
            .call::<Value>(reqwest::Method::GET, &self.database_url, None)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Rejected(reason)) if reason.starts_with("HTTP 404") => {}
            Err(err) => return Err(err),
        }
        if let Err(StoreError::Rejected(reason)) = self
            .call::<Value>(reqwest::Method::GET, &tenant_url, None)
            .await
        {
            return Err(StoreError::Rejected(format!(
                "tenant `{tenant}` does not exist at {} ({reason}): create it, or set CHROMA_TENANT to one that does",
                self.url
            )));
        }
        let created = self
            .call::<Value>(
                reqwest::Method::POST,
                &format!("{tenant_url}/databases"),
                Some(json!({ "name": database })),
            )
            .await;
        match created {
            Ok(_) => {
                tracing::info!(tenant, database, "created the Chroma database");
                Ok(())
            }
            // Another processor created it meanwhile.
            Err(StoreError::Rejected(reason)) if reason.starts_with("HTTP 409") => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Drops the whole collection (tests and `processor eval`).
    pub async fn drop_collection(&self) -> Result<(), StoreError> {
        self.call::<Value>(
            reqwest::Method::DELETE,
            &format!("{}/collections/{}", self.database_url, self.collection_name),
            None,
        )
        .await?;
        Ok(())
    }

    /// One API call: sends `body` as JSON, decodes a 2xx answer as `T`, sorts failures.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<T, StoreError> {
        let unavailable = |reason: String| StoreError::Unavailable {
            url: self.url.clone(),
            reason,
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| unavailable(transport_error(&err)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| unavailable(transport_error(&err)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let reason = format!("HTTP {}: {}", status.as_u16(), text.trim());
            return Err(classify_status(&self.url, status.as_u16(), reason));
        }
        // Answers of unit calls (upsert, delete) may be empty or `null`.
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map_err(|err| StoreError::Rejected(format!("unexpected answer from {url}: {err}")))
    }
}

/// A stored record's id as a message id. RTFM writes only message ids; a record another
/// writer put in the collection under another id is no message of ours and is left out.
fn stored_id(id: &str) -> Option<MessageId> {
    let parsed = id.parse().ok();
    if parsed.is_none() {
        tracing::warn!(
            id,
            "a record in the collection is not a Discord message id; ignored"
        );
    }
    parsed
}

#[async_trait::async_trait]
impl VectorStore for ChromaStore {
    fn location(&self) -> &str {
        &self.url
    }

    /// `GET /api/v2/heartbeat`.
    async fn heartbeat(&self) -> bool {
        let url = format!("{}/api/v2/heartbeat", self.url);
        matches!(self.http.get(url).send().await, Ok(response) if response.status().is_success())
    }

    async fn upsert(
        &self,
        messages: &[StoredMessage],
        embeddings: &[Vec<f32>],
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        check_upsert(messages, embeddings)?;
        let body = json!({
            "ids": messages.iter().map(|message| &message.id).collect::<Vec<_>>(),
            "embeddings": embeddings,
            "metadatas": messages.iter().map(|message| &message.metadata).collect::<Vec<_>>(),
            "documents": messages.iter().map(|message| &message.document).collect::<Vec<_>>(),
        });
        self.call::<Value>(
            reqwest::Method::POST,
            &format!("{}/upsert", self.collection_url),
            Some(body),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.call::<Value>(
            reqwest::Method::POST,
            &format!("{}/delete", self.collection_url),
            Some(json!({ "ids": ids })),
        )
        .await?;
        Ok(())
    }

    async fn delete_where(&self, filter: &Filter) -> Result<(), StoreError> {
        check_delete_where(filter)?;
        self.call::<Value>(
            reqwest::Method::POST,
            &format!("{}/delete", self.collection_url),
            Some(json!({ "where": to_where(filter) })),
        )
        .await?;
        Ok(())
    }

    /// With `n` at least the number of matching messages this is every match with its
    /// similarity, which is how retrieval reads a hit's surroundings: a tenth of the time of a
    /// `get` that returns the stored vectors (decision 0015 has the figures), and
    /// exhaustive — the vector search stops early only once it holds `n` matches.
    async fn query(
        &self,
        embedding: &[f32],
        filter: &Filter,
        n: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let mut body = json!({
            "query_embeddings": [embedding],
            "n_results": n.max(1),
            "include": ["metadatas", "documents", "distances"],
        });
        if let Some(filter) = to_where(filter) {
            body["where"] = filter;
        }
        let answer: QueryAnswer = self
            .call(
                reqwest::Method::POST,
                &format!("{}/query", self.collection_url),
                Some(body),
            )
            .await?;
        let documents = first_row(answer.documents);
        let metadatas = first_row(answer.metadatas);
        let distances = first_row(answer.distances);
        Ok(answer
            .ids
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(index, id)| Some((index, stored_id(&id)?)))
            .map(|(index, id)| Hit {
                message: StoredMessage {
                    id,
                    document: nth(&documents, index),
                    metadata: nth(&metadatas, index),
                },
                // Cosine distance is 1 - similarity.
                similarity: 1.0
                    - distances
                        .as_ref()
                        .and_then(|values| values.get(index).copied().flatten())
                        .unwrap_or(1.0),
            })
            .collect())
    }

    async fn get(
        &self,
        filter: &Filter,
        ids: &[MessageId],
        limit: Option<usize>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let answer = self
            .get_records(filter, ids, limit, &["metadatas", "documents"])
            .await?;
        Ok(answer
            .ids
            .iter()
            .enumerate()
            .filter_map(|(index, id)| Some((index, stored_id(id)?)))
            .map(|(index, id)| StoredMessage {
                id,
                document: nth(&answer.documents, index),
                metadata: nth(&answer.metadatas, index),
            })
            .collect())
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.call(
            reqwest::Method::GET,
            &format!("{}/count", self.collection_url),
            None,
        )
        .await
    }

    async fn tally(
        &self,
        filter: &Filter,
        field: Field,
    ) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        self.tally_paged(filter, field, 5_000).await
    }
}

impl ChromaStore {
    /// [`VectorStore::tally`] reading `page` records per request.
    pub async fn tally_paged(
        &self,
        filter: &Filter,
        field: Field,
        page_size: usize,
    ) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        let page_size = page_size.max(1);
        let mut counts = std::collections::BTreeMap::new();
        let mut offset = 0;
        loop {
            let mut body = json!({"include": ["metadatas"], "limit": page_size, "offset": offset});
            if let Some(filter) = to_where(filter) {
                body["where"] = filter;
            }
            let page: GetAnswer = self
                .call(
                    reqwest::Method::POST,
                    &format!("{}/get", self.collection_url),
                    Some(body),
                )
                .await?;
            for index in 0..page.ids.len() {
                let metadata = nth(&page.metadatas, index);
                *counts.entry(tally_key(&metadata, field)).or_insert(0) += 1;
            }
            if page.ids.len() < page_size {
                return Ok(counts);
            }
            offset += page_size;
        }
    }
}
