//! Hosted embedding APIs: Gemini `batchEmbedContents` and OpenAI-compatible `/embeddings`,
//! split to each API's batch limits.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::EmbedError;

/// Most inputs one `batchEmbedContents` call may carry (Gemini API reference: "at most 100
/// requests can be in one batch").
pub const GEMINI_MAX_BATCH: usize = 100;
/// OpenAI `/embeddings`: at most 2 048 inputs per request and 300 000 tokens in all (API
/// reference); we also cap the characters per request so the token total stays far below that
/// even at 2 characters per token.
pub const OPENAI_MAX_BATCH: usize = 2048;
pub const OPENAI_MAX_BATCH_CHARS: usize = 500_000;
/// Calls in flight at once by default: most of the gain against a provider's latency
/// (docs/benchmarks.md), few enough that a provider's per-minute request quota is met by its
/// 429s (retried with backoff) rather than overrun.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Splits `texts` into consecutive chunks of at most `max_items` texts and (unless a single
/// text is longer) `max_chars` characters.
pub fn api_chunks(
    texts: &[String],
    max_items: usize,
    max_chars: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    for (index, text) in texts.iter().enumerate() {
        let length = text.chars().count();
        if index > start && (index - start >= max_items.max(1) || chars + length > max_chars) {
            chunks.push(start..index);
            start = index;
            chars = 0;
        }
        chars += length;
    }
    if start < texts.len() {
        chunks.push(start..texts.len());
    }
    chunks
}

/// Which embedding backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbeddingProvider {
    /// all-MiniLM-L6-v2 in-process (default).
    Local,
    /// Gemini `batchEmbedContents` (e.g. `gemini-embedding-001`).
    Gemini,
    /// Any OpenAI-compatible `/embeddings`.
    Openai,
}

/// A hosted embedding API.
#[derive(Clone)]
pub struct HostedEmbedder {
    provider: EmbeddingProvider,
    client: reqwest::Client,
    base_url: String,
    model: String,
    api_key: Option<SecretString>,
    dimensions: usize,
    /// Calls in flight at once for one batch of texts (`EMBEDDING_CONCURRENCY`).
    concurrency: usize,
}

impl std::fmt::Debug for HostedEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedEmbedder")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl HostedEmbedder {
    pub fn new(
        provider: EmbeddingProvider,
        base_url: &str,
        model: &str,
        api_key: Option<SecretString>,
        dimensions: usize,
    ) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| EmbedError::Inference(format!("HTTP client: {err}")))?;
        Ok(Self {
            provider,
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            dimensions,
            concurrency: DEFAULT_CONCURRENCY,
        })
    }

    /// At most `calls` requests in flight at once (at least 1).
    pub fn with_concurrency(mut self, calls: usize) -> Self {
        self.concurrency = calls.max(1);
        self
    }

    /// Embeds `texts` in as many calls as the provider's batch limits require, up to
    /// `concurrency` of them at once, the vectors in the texts' order.
    pub(super) async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        use futures::{StreamExt, TryStreamExt};
        let (max_items, max_chars) = match self.provider {
            EmbeddingProvider::Gemini => (GEMINI_MAX_BATCH, usize::MAX),
            _ => (OPENAI_MAX_BATCH, OPENAI_MAX_BATCH_CHARS),
        };
        let chunks: Vec<Vec<Vec<f32>>> = futures::stream::iter(
            api_chunks(texts, max_items, max_chars)
                .into_iter()
                .map(|chunk| self.embed_call(&texts[chunk])),
        )
        .buffered(self.concurrency)
        .try_collect()
        .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn embed_call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vectors = match self.provider {
            EmbeddingProvider::Gemini => {
                let url = format!(
                    "{}/v1beta/models/{}:batchEmbedContents",
                    self.base_url, self.model
                );
                let requests: Vec<_> = texts
                    .iter()
                    .map(|text| {
                        json!({
                            "model": format!("models/{}", self.model),
                            "content": {"parts": [{"text": text}]},
                            "outputDimensionality": self.dimensions,
                        })
                    })
                    .collect();
                let mut request = self.client.post(url).json(&json!({ "requests": requests }));
                if let Some(key) = &self.api_key {
                    request = request.header("x-goog-api-key", key.expose_secret());
                }
                let body = post_json(request).await?;
                body["embeddings"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|item| floats(&item["values"]))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            }
            EmbeddingProvider::Openai | EmbeddingProvider::Local => {
                let url = format!("{}/embeddings", self.base_url);
                let mut request = self
                    .client
                    .post(url)
                    .json(&json!({ "model": self.model, "input": texts }));
                if let Some(key) = &self.api_key {
                    request = request.bearer_auth(key.expose_secret());
                }
                let body = post_json(request).await?;
                body["data"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|item| floats(&item["embedding"]))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            }
        };
        if vectors.len() != texts.len() || vectors.iter().any(Vec::is_empty) {
            return Err(EmbedError::Rejected {
                status: 200,
                message: format!(
                    "expected {} embeddings, the API returned {} usable ones",
                    texts.len(),
                    vectors.iter().filter(|vector| !vector.is_empty()).count()
                ),
            });
        }
        Ok(vectors.into_iter().map(normalise).collect())
    }
}

/// Sends a request and reads its JSON answer; a non-2xx status is an error (URL left out, as
/// some gateways carry keys in it).
async fn post_json(request: reqwest::RequestBuilder) -> Result<serde_json::Value, EmbedError> {
    let transport = |err: reqwest::Error| EmbedError::Unavailable(err.without_url().to_string());
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return response.json().await.map_err(|err| EmbedError::Rejected {
            status,
            message: format!("unreadable answer: {}", err.without_url()),
        });
    }
    let body = response.text().await.unwrap_or_default();
    Err(classify_status(status, &body))
}

/// 408, 429 and 5xx are worth retrying. 401, 403 and 404 are an outage too, not bad records:
/// a rotated or revoked key, or a wrong model or path, fails every request the same way until
/// an operator acts, so ingestion waits (not ready, saying why) instead of dead-lettering
/// everything. Any other 4xx is the provider refusing this input. The provider's own message
/// (`{"error": {"message": …}}` for Gemini and OpenAI) is kept.
pub fn classify_status(status: u16, body: &str) -> EmbedError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(500).collect());
    match status {
        401 | 403 => EmbedError::Unavailable(format!(
            "HTTP {status}: the embedding API refused the key (EMBEDDING_API_KEY, else \
             GEMINI_API_KEY / OPENAI_API_KEY): {message}"
        )),
        404 => EmbedError::Unavailable(format!(
            "HTTP 404: the embedding API has no such model or path (EMBEDDING_MODEL, \
             EMBEDDING_BASE_URL): {message}"
        )),
        408 | 429 | 500.. => EmbedError::Unavailable(format!("HTTP {status}: {message}")),
        _ => EmbedError::Rejected { status, message },
    }
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default()
}

fn normalise(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}
