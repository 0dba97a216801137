//! Sentence embeddings: `all-MiniLM-L6-v2` in-process (default; same model as the Python bot,
//! no network at run time) or a hosted embedding API.
//!
//! The local model mirrors sentence-transformers exactly: BERT forward pass, mean pooling over
//! the attention mask, L2 normalisation; batches are padded to their longest sentence and
//! truncated at 256 tokens. Texts are sorted by length before batching (less padding, ~30 %
//! faster) and the results put back in input order. Inference is CPU-bound, so it runs on the
//! blocking thread pool, never on the async runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Output size of all-MiniLM-L6-v2.
pub const MINILM_DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Where the processor downloads the model from when its cache is empty (a user with internet).
const HUB_BASE: &str = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main";
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files not usable in {path} (set EMBEDDING_MODEL_DIR, or run scripts/model.sh): {reason}")]
    ModelFiles { path: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Inference(String),
    /// Transport error, timeout, 408, 429 or 5xx: the same request may succeed later.
    #[error("embedding API unavailable: {0}")]
    Unavailable(String),
    /// Any other 4xx (or an answer that can never be used): this request will never succeed
    /// as it is. The message is the provider's own.
    #[error("embedding API rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
}

impl EmbedError {
    /// Whether retrying the same input is pointless (the input must be isolated and, if it
    /// still fails alone, dead-lettered).
    pub fn is_permanent(&self) -> bool {
        matches!(self, EmbedError::Rejected { .. } | EmbedError::Inference(_))
    }
}

/// Most inputs one `batchEmbedContents` call may carry (Gemini API reference: "at most 100
/// requests can be in one batch").
pub const GEMINI_MAX_BATCH: usize = 100;
/// OpenAI `/embeddings`: at most 2 048 inputs per request and 300 000 tokens in all (API
/// reference); we also cap the characters per request so the token total stays far below that
/// even at 2 characters per token.
pub const OPENAI_MAX_BATCH: usize = 2048;
pub const OPENAI_MAX_BATCH_CHARS: usize = 500_000;

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

/// The default model cache: `$XDG_CACHE_HOME/rtfm/models/all-MiniLM-L6-v2`, else
/// `~/.cache/rtfm/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("rtfm/models/all-MiniLM-L6-v2")
}

fn model_files_present(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|file| dir.join(file).is_file())
}

/// Makes sure the model files are in `dir`. An explicit directory must already hold them; the
/// default cache directory is filled from the model hub when empty.
pub async fn ensure_model_files(dir: &Path, explicit: bool) -> Result<(), EmbedError> {
    if model_files_present(dir) {
        return Ok(());
    }
    let missing = |reason: String| EmbedError::ModelFiles {
        path: dir.to_path_buf(),
        reason,
    };
    if explicit {
        return Err(missing(format!(
            "expected {} there",
            MODEL_FILES.join(", ")
        )));
    }
    tracing::info!(path = %dir.display(), "embedding model not cached; downloading it from the model hub");
    std::fs::create_dir_all(dir).map_err(|err| missing(err.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|err| missing(err.to_string()))?;
    for file in MODEL_FILES {
        let url = format!("{HUB_BASE}/{file}");
        let bytes = async {
            client
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
        }
        .await
        .map_err(|err| missing(format!("download of {url} failed: {err}")))?;
        // Write then rename, so an interrupted download never leaves a half file behind.
        let partial = dir.join(format!("{file}.partial"));
        std::fs::write(&partial, &bytes).map_err(|err| missing(err.to_string()))?;
        std::fs::rename(&partial, dir.join(file)).map_err(|err| missing(err.to_string()))?;
    }
    Ok(())
}

/// all-MiniLM-L6-v2 on the CPU.
pub struct LocalModel {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    batch_size: usize,
}

impl LocalModel {
    /// Loads the model from `dir` (config.json, tokenizer.json, model.safetensors).
    pub fn load(dir: &Path, batch_size: usize) -> Result<Self, EmbedError> {
        let bad = |reason: String| EmbedError::ModelFiles {
            path: dir.to_path_buf(),
            reason,
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|err| bad(format!("config.json: {err}")))?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|err| bad(format!("config.json: {err}")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|err| bad(format!("tokenizer.json: {err}")))?;
        // The packaged tokenizer.json pads and truncates to a fixed 128; sentence-transformers
        // pads to the longest sentence of the batch and truncates at 256.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|err| bad(format!("tokenizer.json: {err}")))?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|err| bad(format!("model.safetensors: {err}")))?;
        let device = Device::Cpu;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|err| bad(format!("model.safetensors: {err}")))?;
        let model = BertModel::load(vars, &config)
            .map_err(|err| bad(format!("model.safetensors: {err}")))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            batch_size: batch_size.max(1),
        })
    }

    /// Embeds `texts` (any number), returning vectors in input order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| texts[index].len());
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&index| texts[index].as_str()).collect();
            let embedded = self.embed_batch(&batch)?;
            for (&index, vector) in chunk.iter().zip(embedded) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_batch(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inference = |err: candle_core::Error| EmbedError::Inference(err.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|err| EmbedError::Inference(err.to_string()))?;
        let length = encodings
            .first()
            .map_or(0, |encoding| encoding.get_ids().len());
        let rows = encodings.len();
        let mut ids = Vec::with_capacity(rows * length);
        let mut mask = Vec::with_capacity(rows * length);
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, length), &self.device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (rows, length), &self.device).map_err(inference)?;
        let token_types = ids.zeros_like().map_err(inference)?;
        let hidden = self
            .model
            .forward(&ids, &token_types, Some(&mask))
            .map_err(inference)?;
        // Mean over real tokens: sum(hidden * mask) / sum(mask).
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|mask| mask.unsqueeze(2))
            .map_err(inference)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|masked| masked.sum(1))
            .map_err(inference)?;
        let counts = mask.sum(1).map_err(inference)?;
        let mean = summed.broadcast_div(&counts).map_err(inference)?;
        let norms = mean
            .sqr()
            .and_then(|squares| squares.sum_keepdim(1))
            .and_then(|sums| sums.sqrt())
            .and_then(|norms| norms.clamp(1e-12, f32::MAX))
            .map_err(inference)?;
        mean.broadcast_div(&norms)
            .and_then(|normalised| normalised.to_vec2::<f32>())
            .map_err(inference)
    }
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
            .build()
            .map_err(|err| EmbedError::Inference(format!("HTTP client: {err}")))?;
        Ok(Self {
            provider,
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            dimensions,
        })
    }

    /// Embeds `texts` in as many calls as the provider's batch limits require.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (max_items, max_chars) = match self.provider {
            EmbeddingProvider::Gemini => (GEMINI_MAX_BATCH, usize::MAX),
            _ => (OPENAI_MAX_BATCH, OPENAI_MAX_BATCH_CHARS),
        };
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in api_chunks(texts, max_items, max_chars) {
            vectors.extend(self.embed_call(&texts[chunk]).await?);
        }
        Ok(vectors)
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

/// 408, 429 and 5xx are worth retrying; any other status is the provider saying no. The
/// provider's own message (`{"error": {"message": …}}` for Gemini and OpenAI) is kept.
pub fn classify_status(status: u16, body: &str) -> EmbedError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(500).collect());
    if status == 408 || status == 429 || status >= 500 {
        EmbedError::Unavailable(format!("HTTP {status}: {message}"))
    } else {
        EmbedError::Rejected { status, message }
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

/// The embedder the processor uses, local or hosted.
#[derive(Clone)]
pub enum Embedder {
    Local(Arc<LocalModel>),
    Hosted(HostedEmbedder),
}

impl Embedder {
    /// Embeds `texts`, returning unit vectors in input order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Embedder::Local(model) => {
                let model = Arc::clone(model);
                tokio::task::spawn_blocking(move || model.embed(&texts))
                    .await
                    .map_err(|err| EmbedError::Inference(format!("embedding task failed: {err}")))?
            }
            Embedder::Hosted(hosted) => hosted.embed(&texts).await,
        }
    }

    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(vec![text.to_string()])
            .await?
            .pop()
            .ok_or_else(|| EmbedError::Inference("no vector returned".to_string()))
    }
}

/// Cosine similarity of two vectors (1 = same direction).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norm_b = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm_a * norm_b).max(1e-12)
}

#[cfg(test)]
mod api_tests {
    use super::*;

    #[test]
    fn batches_are_split_to_the_api_limits() {
        let texts: Vec<String> = (0..250).map(|i| format!("text {i}")).collect();
        let chunks = api_chunks(&texts, GEMINI_MAX_BATCH, usize::MAX);
        assert_eq!(chunks, vec![0..100, 100..200, 200..250]);
        let long: Vec<String> = vec!["x".repeat(300), "y".repeat(300), "z".repeat(10)];
        assert_eq!(api_chunks(&long, 10, 500), vec![0..1, 1..3]);
        assert!(api_chunks(&[], 10, 10).is_empty());
    }

    #[test]
    fn provider_errors_are_permanent_or_retriable_by_status() {
        let body =
            r#"{"error": {"code": 400, "message": "Request contains an invalid argument."}}"#;
        let rejected = classify_status(400, body);
        assert!(rejected.is_permanent());
        assert!(
            rejected.to_string().contains("invalid argument"),
            "{rejected}"
        );
        for status in [408, 429, 500, 503] {
            assert!(!classify_status(status, "busy").is_permanent(), "{status}");
        }
    }
}
