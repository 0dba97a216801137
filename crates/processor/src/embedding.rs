//! Sentence embeddings: `all-MiniLM-L6-v2` in-process (default; same model as the Python bot,
//! no network at run time) or a hosted embedding API.
//!
//! The local model mirrors sentence-transformers exactly: BERT forward pass, mean pooling over
//! the attention mask, L2 normalisation; batches are padded to their longest sentence and
//! truncated at 256 tokens. It runs on ONNX Runtime (`model.onnx`, written from the model's
//! safetensors by `scripts/minilm_to_onnx.py`; the runtime library comes from the `onnxruntime`
//! package on PyPI), which measured 2.7x faster than candle on the same CPU (README,
//! "Performance"). Texts are sorted by length and embedded in small batches (less padding; 16
//! measured about as fast as 4, and 10 % faster than 32), and the results put back in input order. Each batch holds the session
//! for ~30 ms only, so a question's embedding never waits behind a whole ingest batch.
//! Inference is CPU-bound, so it runs on the blocking thread pool, never on the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Output size of all-MiniLM-L6-v2.
pub const MINILM_DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files not usable in {path} (run scripts/model.sh, or set EMBEDDING_MODEL_DIR): {reason}")]
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

/// What the local embedder reads from its directory (`scripts/model.sh` puts them there).
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The ONNX Runtime shared library, unless `ORT_DYLIB_PATH` names another.
pub const RUNTIME_FILE: &str = "libonnxruntime.so";

/// Sentences per forward pass by default. Measured on 2 000 lines of the public corpus, release
/// build, 2 cores (msg/s): 4: 497, 8: 461-475, 16: 447-453, 32: 410, 64: 397. Chat lines are
/// short; larger batches pad more and fall out of cache. 8 keeps the per-call overhead low
/// for longer texts.
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// The default model directory: `$XDG_CACHE_HOME/rtfm/models/all-MiniLM-L6-v2`, else
/// `~/.cache/rtfm/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("rtfm/models/all-MiniLM-L6-v2")
}

/// Where the ONNX Runtime library is: `ORT_DYLIB_PATH` if set, else next to the model.
pub fn runtime_library(model_dir: &Path) -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| model_dir.join(RUNTIME_FILE))
}

/// Loads the ONNX Runtime library once per process (it cannot be swapped later) and returns
/// its environment; a failed attempt is not remembered, so a corrected path works next time.
fn runtime(library: &Path) -> Result<Environment, String> {
    static LOADED: Mutex<Option<Environment>> = Mutex::new(None);
    if !library.is_file() {
        return Err(format!("{} does not exist", library.display()));
    }
    let mut loaded = LOADED
        .lock()
        .map_err(|_| "runtime loader poisoned".to_string())?;
    if let Some(environment) = loaded.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(|err| err.to_string())?
        .with_name("rtfm")
        .build()
        .map_err(|err| err.to_string())?;
    *loaded = Some(environment.clone());
    Ok(environment)
}

/// all-MiniLM-L6-v2 on the CPU, through ONNX Runtime.
pub struct LocalModel {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    batch_size: usize,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Loads the model from `dir` (model.onnx, tokenizer.json; the runtime library from
    /// `ORT_DYLIB_PATH` or `dir/libonnxruntime.so`). `threads` is ONNX Runtime's intra-op
    /// thread count (0: one per core).
    pub fn load(dir: &Path, batch_size: usize, threads: usize) -> Result<Self, EmbedError> {
        let bad = |reason: String| EmbedError::ModelFiles {
            path: dir.to_path_buf(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(dir.join(TOKENIZER_FILE))
            .map_err(|err| bad(format!("{TOKENIZER_FILE}: {err}")))?;
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
            .map_err(|err| bad(format!("{TOKENIZER_FILE}: {err}")))?;
        let model_path = dir.join(MODEL_FILE);
        if !model_path.is_file() {
            return Err(bad(format!("{MODEL_FILE} is missing")));
        }
        let library = runtime_library(dir);
        let environment = runtime(&library).map_err(|reason| {
            bad(format!(
                "ONNX Runtime library {}: {reason} (set ORT_DYLIB_PATH)",
                library.display()
            ))
        })?;
        let session = Session::builder(&environment)
            .and_then(|builder| {
                builder
                    .with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .and_then(|builder| builder.with_intra_threads(threads).map_err(Into::into))
            // Idle threads sleep instead of spinning: the processor shares its cores with
            // Kafka's client, Chroma's requests and, on one machine, the servers themselves.
            .and_then(|builder| builder.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut builder| builder.commit_from_file(&model_path))
            .map_err(|err| bad(format!("{MODEL_FILE}: {err}")))?;
        Ok(Self {
            session: Mutex::new(session),
            tokenizer,
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
        let inference = |err: ort::Error| EmbedError::Inference(err.to_string());
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
            ids.extend(encoding.get_ids().iter().map(|&id| i64::from(id)));
            mask.extend(
                encoding
                    .get_attention_mask()
                    .iter()
                    .map(|&bit| i64::from(bit)),
            );
        }
        let ids = Tensor::from_array(([rows, length], ids)).map_err(inference)?;
        let mask = Tensor::from_array(([rows, length], mask)).map_err(inference)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| EmbedError::Inference("embedding session poisoned".to_string()))?;
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(inference)?;
        let (shape, values) = outputs["sentence_embedding"]
            .try_extract_tensor::<f32>()
            .map_err(inference)?;
        let width = shape.get(1).copied().unwrap_or_default();
        if shape.len() != 2 || shape[0] as usize != rows || width <= 0 {
            return Err(EmbedError::Inference(format!(
                "model returned shape {shape:?} for {rows} sentences"
            )));
        }
        Ok(values.chunks(width as usize).map(<[f32]>::to_vec).collect())
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
