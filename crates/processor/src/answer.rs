//! From a question to a `BotResponse`: retrieval, then the configured model — or the extractive
//! answer when there is no model, when it fails, or when its breaker is open. This never fails:
//! every query gets a response, labelled when degraded.

use chrono::Utc;
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, ResponseMetadata};
use serde_json::Map;
use tracing::{info, warn};

use crate::metrics;
use crate::model::{BreakerState, ModelClient};
use crate::prompt::{self, Rendered};
use crate::retrieval::Retriever;

/// What to do with a question older than `QUERY_MAX_AGE_SECS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StalePolicy {
    /// Answer, saying it is late (default).
    Answer,
    /// Drop it (its offset is still committed).
    Skip,
}

pub struct Answerer {
    pub retriever: Retriever,
    pub model: Option<ModelClient>,
    pub max_age_secs: i64,
    pub stale_policy: StalePolicy,
}

impl Answerer {
    /// The response to `query`, or `None` when it is stale and the policy is to skip it.
    pub async fn respond(&self, query: &BotQuery) -> Option<BotResponse> {
        let waited = query
            .timestamp_utc()
            .map(|asked| (Utc::now() - asked).num_seconds())
            .unwrap_or(0);
        let late = waited > self.max_age_secs;
        if late && self.stale_policy == StalePolicy::Skip {
            info!(query_id = %query.query_id, waited_secs = waited, "skipping a stale query");
            return None;
        }
        let mut answer = self.answer(query).await;
        if late {
            answer.text = format!("{}{}", prompt::late_notice(waited), answer.text);
        }
        metrics::QUERIES_ANSWERED
            .with_label_values(&[answer.provider])
            .inc();
        if answer.degraded {
            metrics::DEGRADED_ANSWERS.inc();
        }
        info!(
            query_id = %query.query_id,
            provider = answer.provider,
            degraded = answer.degraded,
            sources = answer.cited_ids.len(),
            confidence = answer.confidence,
            "query answered"
        );
        Some(BotResponse {
            response_id: uuid::Uuid::new_v4().to_string(),
            query_id: query.query_id.clone(),
            original_message_id: query.original_message_id.clone(),
            response_text: answer.text,
            channel_id: query.channel_id.clone(),
            timestamp: now_timestamp(),
            metadata: ResponseMetadata {
                model: answer.model,
                confidence: f64::from(answer.confidence),
                sources_count: answer.cited_ids.len() as u32,
                source_message_ids: answer.cited_ids,
                provider: Some(answer.provider.to_string()),
                degraded: answer.degraded,
                // Echoed so the bot can finish a slash command after a restart; opaque here.
                extra: query
                    .context
                    .get("interaction")
                    .map(|interaction| {
                        Map::from_iter([("interaction".to_string(), interaction.clone())])
                    })
                    .unwrap_or_default(),
            },
            guild_id: query.guild_id.clone(),
            extra: Map::new(),
        })
    }

    async fn answer(&self, query: &BotQuery) -> Answer {
        tracing::debug!(query_id = %query.query_id, question = %query.question, "answering");
        let retrieved = match self.retriever.retrieve(query).await {
            Ok(retrieved) => retrieved,
            Err(err) => {
                warn!(query_id = %query.query_id, error = %err, "retrieval failed; answering that the index is unavailable");
                return Answer::plain(prompt::INDEX_DOWN, "none", true);
            }
        };
        if retrieved.is_empty() {
            return Answer::plain(prompt::NOT_FOUND, "none", false);
        }
        let confidence = retrieved.best_similarity();
        let Some(model) = &self.model else {
            return Answer::from_rendered(
                prompt::render_extractive(&retrieved, prompt::EXTRACTIVE_LABEL),
                "extractive",
                "extractive",
                false,
                confidence,
            );
        };
        let sources = retrieved.numbered();
        let prompt_text = prompt::build_prompt(&query.question, &sources);
        let result = model.complete(&prompt_text).await;
        metrics::BREAKER_STATE.set(match model.breaker_state() {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        });
        match result {
            Ok(text) => Answer::from_rendered(
                prompt::render_model_answer(&text, &sources, &retrieved),
                model.kind().as_str(),
                model.model_name(),
                false,
                confidence,
            ),
            Err(err) => {
                warn!(query_id = %query.query_id, error = %err, "model failed; falling back to the extractive answer");
                Answer::from_rendered(
                    prompt::render_extractive(&retrieved, prompt::DEGRADED_LABEL),
                    "extractive",
                    "extractive",
                    true,
                    confidence,
                )
            }
        }
    }
}

struct Answer {
    text: String,
    cited_ids: Vec<String>,
    provider: &'static str,
    model: String,
    degraded: bool,
    confidence: f32,
}

impl Answer {
    fn plain(text: &str, provider: &'static str, degraded: bool) -> Self {
        Self {
            text: text.to_string(),
            cited_ids: Vec::new(),
            provider,
            model: "none".to_string(),
            degraded,
            confidence: 0.0,
        }
    }

    fn from_rendered(
        rendered: Rendered,
        provider: &'static str,
        model: &str,
        degraded: bool,
        confidence: f32,
    ) -> Self {
        Self {
            text: rendered.text,
            cited_ids: rendered.cited_ids,
            provider,
            model: model.to_string(),
            degraded,
            confidence,
        }
    }
}
