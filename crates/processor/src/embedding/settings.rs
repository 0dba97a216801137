//! How the processor's embedder is configured and built.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;

use super::{Batching, Embedder, EmbeddingProvider, HostedEmbedder, LocalModel, Precision};
use crate::embedding;

/// Where a hosted provider is reached when the embedding settings name no URL or key: the
/// chat model's settings for the same provider (the wiring in `lib.rs` fills it in).
#[derive(Clone, Default)]
pub struct HostedFallback {
    /// Gemini's base URL and key.
    pub gemini: (String, Option<SecretString>),
    /// An OpenAI-compatible API's base URL and key.
    pub openai: (String, Option<SecretString>),
}

/// Embedding settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddingSettings {
    /// local (all-MiniLM-L6-v2 in-process) | gemini | openai.
    #[arg(
        long = "embedding-provider",
        env = "EMBEDDING_PROVIDER",
        value_enum,
        default_value = "local"
    )]
    pub embedding_provider: EmbeddingProvider,
    /// Directory with model.onnx, tokenizer.json and libonnxruntime.so, as `scripts/model.sh`
    /// fills it. Unset: ~/.cache/rtfm/models/all-MiniLM-L6-v2.
    #[arg(long = "embedding-model-dir", env = "EMBEDDING_MODEL_DIR")]
    pub embedding_model_dir: Option<PathBuf>,
    /// fp32 (the same vectors as sentence-transformers) | int8 (faster, smaller, slightly
    /// different vectors; index and query a collection with one precision).
    #[arg(
        long = "embedding-precision",
        env = "EMBEDDING_PRECISION",
        value_enum,
        default_value = "fp32"
    )]
    pub embedding_precision: Precision,
    /// Most sentences per forward pass of the local model.
    #[arg(
        long = "embedding-batch-size",
        env = "EMBEDDING_BATCH_SIZE",
        default_value_t = Batching::DEFAULT.max_sentences
    )]
    pub embedding_batch_size: usize,
    /// Most tokens per forward pass of the local model (sentences × the longest's tokens):
    /// short sentences go many to a pass, long ones few.
    #[arg(
        long = "embedding-batch-tokens",
        env = "EMBEDDING_BATCH_TOKENS",
        default_value_t = Batching::DEFAULT.max_tokens
    )]
    pub embedding_batch_tokens: usize,
    /// Threads of the local model's forward pass (0: one per core). Two processors on one
    /// machine should take half the cores each.
    #[arg(
        long = "embedding-threads",
        env = "EMBEDDING_THREADS",
        default_value_t = 0
    )]
    pub embedding_threads: usize,
    /// Hosted embedding model name (gemini-embedding-001, text-embedding-3-small, …).
    #[arg(
        long = "embedding-model",
        env = "EMBEDDING_MODEL",
        default_value = "gemini-embedding-001"
    )]
    pub embedding_model: String,
    /// Hosted embedding API base URL; default GEMINI_BASE_URL or OPENAI_BASE_URL.
    #[arg(long = "embedding-base-url", env = "EMBEDDING_BASE_URL")]
    pub embedding_base_url: Option<String>,
    /// Hosted embedding API key; default GEMINI_API_KEY or OPENAI_API_KEY.
    #[arg(long = "embedding-api-key", env = "EMBEDDING_API_KEY", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub embedding_api_key: Option<SecretString>,
    /// Vector size requested from a hosted API (must match the collection).
    #[arg(
        long = "embedding-dimensions",
        env = "EMBEDDING_DIMENSIONS",
        default_value_t = 384
    )]
    pub embedding_dimensions: usize,
    /// Requests to a hosted embedding API in flight at once, per batch of messages.
    #[arg(
        long = "embedding-concurrency",
        env = "EMBEDDING_CONCURRENCY",
        default_value_t = super::hosted::DEFAULT_CONCURRENCY
    )]
    pub embedding_concurrency: usize,
}

/// Loads the configured embedder.
pub async fn build_embedder(
    settings: &EmbeddingSettings,
    fallback: &HostedFallback,
) -> anyhow::Result<Embedder> {
    match settings.embedding_provider {
        EmbeddingProvider::Local => {
            let dir = settings
                .embedding_model_dir
                .clone()
                .unwrap_or_else(embedding::default_model_dir);
            let batching = Batching {
                max_sentences: settings.embedding_batch_size,
                max_tokens: settings.embedding_batch_tokens,
            };
            let (precision, threads) = (settings.embedding_precision, settings.embedding_threads);
            let loaded = tokio::task::spawn_blocking(move || {
                LocalModel::load(&dir, precision, batching, threads)
            })
            .await
            .context("while loading the embedding model")??;
            Ok(Embedder::Local(Arc::new(loaded)))
        }
        provider => {
            let (base, key) = if provider == EmbeddingProvider::Gemini {
                fallback.gemini.clone()
            } else {
                fallback.openai.clone()
            };
            let hosted = HostedEmbedder::new(
                provider,
                settings.embedding_base_url.as_deref().unwrap_or(&base),
                &settings.embedding_model,
                settings.embedding_api_key.clone().or(key),
                settings.embedding_dimensions,
            )?
            .with_concurrency(settings.embedding_concurrency);
            Ok(Embedder::Hosted(hosted))
        }
    }
}
