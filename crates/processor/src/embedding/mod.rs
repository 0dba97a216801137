//! Sentence embeddings: `all-MiniLM-L6-v2` in-process (default; same model as the Python bot,
//! no network at run time) or a hosted embedding API.
//!
//! The local model mirrors sentence-transformers exactly: BERT forward pass, mean pooling over
//! the attention mask, L2 normalisation; batches are padded to their longest sentence and
//! truncated at 256 tokens. It runs on ONNX Runtime (`model.onnx`, written from the model's
//! safetensors by `scripts/minilm_to_onnx.py`; the runtime library comes from the `onnxruntime`
//! package on PyPI), faster than candle on the same CPU (decision 0001 and the benchmarks
//! document have the figures). Texts are tokenized once, sorted by token count and embedded in small
//! batches (little padding; see [`Batching`]), and the results put back in input order. A
//! question stops the running batch and goes first ([`LocalModel::embed_question`]).
//! Inference is CPU-bound, so it runs on the blocking thread pool, never on the async
//! runtime.
//!
//! - `local`: the in-process model (ONNX Runtime);
//! - `hosted`: Gemini and OpenAI-compatible embedding APIs, split to their batch limits;
//! - `settings`: `EMBEDDING_*` and building the configured embedder.

mod hosted;
mod local;
mod settings;

use std::path::PathBuf;
use std::sync::Arc;

pub use hosted::{
    api_chunks, classify_status, EmbeddingProvider, HostedEmbedder, GEMINI_MAX_BATCH,
    OPENAI_MAX_BATCH, OPENAI_MAX_BATCH_CHARS,
};
pub use local::{
    default_model_dir, runtime_library, Answering, Batching, LocalModel, Precision,
    INT8_MODEL_FILE, MAX_BULK_HOLD, MODEL_FILE, RUNTIME_FILE, TOKENIZER_FILE,
};
pub use settings::{build_embedder, EmbeddingSettings, HostedFallback};

/// Output size of all-MiniLM-L6-v2.
pub const MINILM_DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
pub(crate) const MAX_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files not usable in {path} (run scripts/model.sh, or set EMBEDDING_MODEL_DIR): {reason}")]
    ModelFiles { path: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Inference(String),
    /// Transport error, timeout, 408, 429 or 5xx, or a refused key or unknown model (401, 403,
    /// 404: fixed by an operator, not by the input): the same request may succeed later.
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

    /// Marks a question as being answered until the guard drops: the local model's ingestion
    /// batches hold back meanwhile (see [`LocalModel::answering`]).
    pub fn answering(&self) -> Answering<'_> {
        match self {
            Embedder::Local(model) => model.answering(),
            Embedder::Hosted(_) => Answering::none(),
        }
    }

    /// Embeds a question: locally ahead of ingestion's batches (see
    /// [`LocalModel::embed_question`]).
    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        match self {
            Embedder::Local(model) => {
                let model = Arc::clone(model);
                let text = text.to_string();
                tokio::task::spawn_blocking(move || model.embed_question(&text))
                    .await
                    .map_err(|err| EmbedError::Inference(format!("embedding task failed: {err}")))?
            }
            Embedder::Hosted(_) => self
                .embed(vec![text.to_string()])
                .await?
                .pop()
                .ok_or_else(|| EmbedError::Inference("no vector returned".to_string())),
        }
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
        // A refused key or a wrong model fails every record alike: an outage, not bad input.
        for status in [401, 403, 404] {
            let outage = classify_status(status, "no");
            assert!(!outage.is_permanent(), "{status}");
            assert!(outage.to_string().contains("EMBEDDING_"), "{outage}");
        }
    }
}
