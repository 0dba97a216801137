//! What the processor waits for and checks at start: Chroma, the transactional producer's
//! broker, a hosted embedding API's key, the answering model's key and name; and where a
//! hosted embedder's key comes from.

use std::sync::Arc;
use std::time::Duration;

use rtfm_core::backoff::Backoff;
use rtfm_core::kafka::{KafkaConfig, TransactionalProducer};
use rtfm_core::telemetry::Readiness;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::answer::Answerer;
use crate::metrics;
use crate::model::{ModelError, ModelSettings};
use crate::store::{self, ChromaStore, StoreConfig};

/// Connects to Chroma, retrying until it answers or `shutdown` fires.
pub async fn connect_store(
    config: &StoreConfig,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<ChromaStore>> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match ChromaStore::connect(config).await {
            Ok(store) => {
                readiness.set("chroma", true);
                metrics::CHROMA_UP.set(1);
                return Ok(Some(store));
            }
            Err(store::StoreError::Rejected(reason)) => {
                anyhow::bail!(
                    "Chroma at {} refused the collection `{}`: {reason}",
                    config.chroma_url,
                    config.chroma_collection
                )
            }
            Err(err) => {
                readiness.set("chroma", false);
                warn!(error = %err, "waiting for Chroma");
                if !backoff.wait(shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Registers the transactional producer, waiting for the broker as [`connect_store`] waits
/// for Chroma: a broker that is unreachable or still starting (compose starts us when it is
/// merely healthy) is waited out, not a reason to exit. `None` if `shutdown` fired meanwhile.
pub(crate) async fn register_transactional(
    kafka: &KafkaConfig,
    transactional_id: &str,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<TransactionalProducer>> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match TransactionalProducer::new(kafka, transactional_id).await {
            Ok(producer) => return Ok(Some(producer)),
            Err(err) if err.is_retriable() => {
                readiness.set_reason(
                    "kafka",
                    false,
                    Some(format!(
                        "waiting for the broker at {}",
                        kafka.bootstrap_servers
                    )),
                );
                warn!(error = %err, bootstrap = %kafka.bootstrap_servers, "waiting for Kafka");
                if !backoff.wait(shutdown).await {
                    return Ok(None);
                }
            }
            Err(err) => {
                return Err(
                    anyhow::Error::new(err).context("while registering the transactional producer")
                )
            }
        }
    }
}

/// Asks a hosted embedding API for one vector until it gives one: until then `/readyz` says
/// `embedding: not ready` with the provider's answer (a refused key, a wrong model), and the
/// log says so once. Ingestion itself waits out the same errors batch by batch.
pub(crate) async fn probe_embedding(
    embedder: crate::embedding::Embedder,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut told = false;
    loop {
        let probe = embedder.embed(vec!["RTFM start-up check".to_string()]);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = tokio::time::timeout(Duration::from_secs(30), probe) => outcome,
        };
        match outcome {
            Ok(Ok(_)) => {
                readiness.set("embedding", true);
                info!("the embedding API accepted the start-up check");
                return;
            }
            Ok(Err(err)) => {
                readiness.set_reason(
                    "embedding",
                    false,
                    Some(format!("start-up check refused: {err}")),
                );
                if !told {
                    error!(error = %err, "the embedding API refused the start-up check; messages wait until it accepts (check EMBEDDING_API_KEY and EMBEDDING_MODEL)");
                    told = true;
                }
            }
            Err(_) => {
                readiness.set_reason(
                    "embedding",
                    false,
                    Some("start-up check unanswered after 30 s".into()),
                );
                if !told {
                    warn!("the embedding API did not answer the start-up check within 30 s");
                    told = true;
                }
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// A hosted embedder's URL and key when the embedding settings name none: the chat model's.
pub fn hosted_fallback(model: &ModelSettings) -> crate::embedding::HostedFallback {
    crate::embedding::HostedFallback {
        gemini: (model.gemini_base_url.clone(), model.gemini_api_key.clone()),
        openai: (model.openai_base_url.clone(), model.openai_api_key.clone()),
    }
}

/// Asks the answering model's API whether it knows the key and the model, at start and again
/// until it does: a refused key or a wrong model name is logged once, with the fix, and
/// `rtfm_model_accepted` says 0 — answers are extractive meanwhile (the model's failures fall
/// back to them), so the service stays ready.
pub(crate) async fn probe_model(answerer: Arc<Answerer>, shutdown: CancellationToken) {
    let Some(model) = answerer.model.as_ref() else {
        return; // extractive answers only: nothing to check
    };
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
    let mut told = false;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = model.probe() => outcome,
        };
        match outcome {
            Ok(()) => {
                metrics::MODEL_ACCEPTED.set(1);
                info!(
                    provider = model.kind().as_str(),
                    model = model.model_name(),
                    "the model API accepted the start-up check"
                );
                return;
            }
            Err(ModelError::Status(status @ (401 | 403 | 404))) => {
                metrics::MODEL_ACCEPTED.set(0);
                if !told {
                    let fix = if status == 404 {
                        "check the model name (GEMINI_MODEL / OPENAI_MODEL) and the base URL"
                    } else {
                        "check the API key (GEMINI_API_KEY / OPENAI_API_KEY)"
                    };
                    error!(status, provider = model.kind().as_str(), model = model.model_name(), "the model API refused the start-up check: {fix}; questions get extractive answers until it accepts");
                    told = true;
                }
            }
            // Unreachable for now, or a status that says nothing about the key: try later.
            Err(err) => tracing::debug!(error = %err, "model start-up check not answered yet"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}
