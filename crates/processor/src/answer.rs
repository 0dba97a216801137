//! From a question to a `BotResponse`: retrieval, then the configured model — or the extractive
//! answer when there is no model, when it fails, or when its breaker is open. This never fails:
//! every query gets a response, labelled when degraded.

use chrono::Utc;
use rtfm_core::ids::MessageId;
use rtfm_core::schema::now_timestamp;
use rtfm_core::{BotQuery, BotResponse, ResponseMetadata};
use serde_json::Map;
use tracing::{info, warn};

use crate::asked::AskedBefore;
use crate::metrics;
use crate::model::{BreakerState, ModelClient};
use crate::prompt::{self, Rendered};
use crate::retrieval::{Retrieved, Retriever, SourceMessage};

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
    /// Earlier questions a new one may repeat (`ASKED_BEFORE_DAYS`; `None`: off).
    pub asked_before: Option<AskedBefore>,
    pub max_age_secs: i64,
    pub stale_policy: StalePolicy,
}

/// How a question's age changes its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staleness {
    Fresh,
    /// Answered, with a notice that it waited this many seconds.
    Late(i64),
    Skip,
}

/// Pure: a question that waited `waited` seconds, against the limit and policy. An unreadable
/// timestamp counts as fresh (the schema validated it; a clock skew must not drop questions).
fn staleness(waited: Option<i64>, max_age_secs: i64, policy: StalePolicy) -> Staleness {
    match waited {
        Some(waited) if waited > max_age_secs => match policy {
            StalePolicy::Answer => Staleness::Late(waited),
            StalePolicy::Skip => Staleness::Skip,
        },
        _ => Staleness::Fresh,
    }
}

/// What retrieval and the model gave for one question.
enum Outcome<'a> {
    /// Chroma could not be searched.
    IndexDown,
    /// Nothing relevant (every hit below the floor).
    NothingRelevant,
    /// Evidence, and no model configured.
    NoModel(&'a Retrieved),
    /// Evidence and the model's text (already checked against the sources by `prompt`).
    Model {
        retrieved: &'a Retrieved,
        sources: &'a [SourceMessage],
        text: &'a str,
        provider: &'static str,
        model: &'a str,
    },
    /// Evidence, but the model failed or its breaker is open.
    ModelFailed(&'a Retrieved),
}

/// Pure: the answer for an outcome. Degraded means "worse than configured": the index down, or
/// the model replaced by the extractive answer; "nothing relevant" and "no model" are not.
fn compose(outcome: Outcome<'_>) -> Answer {
    match outcome {
        Outcome::IndexDown => Answer::plain(prompt::INDEX_DOWN, "none", true),
        Outcome::NothingRelevant => Answer::plain(prompt::NOT_FOUND, "none", false),
        Outcome::NoModel(retrieved) => Answer::from_rendered(
            prompt::render_extractive(retrieved, prompt::EXTRACTIVE_LABEL),
            "extractive",
            "extractive",
            false,
            retrieved.best_similarity(),
        ),
        Outcome::Model {
            retrieved,
            sources,
            text,
            provider,
            model,
        } => Answer::from_rendered(
            prompt::render_model_answer(text, sources, retrieved),
            provider,
            model,
            false,
            retrieved.best_similarity(),
        ),
        Outcome::ModelFailed(retrieved) => Answer::from_rendered(
            prompt::render_extractive(retrieved, prompt::DEGRADED_LABEL),
            "extractive",
            "extractive",
            true,
            retrieved.best_similarity(),
        ),
    }
}

impl Answerer {
    /// The response to `query`, or `None` when it is stale and the policy is to skip it.
    pub async fn respond(&self, query: &BotQuery) -> Option<BotResponse> {
        let waited = query
            .timestamp_utc()
            .map(|asked| (Utc::now() - asked).num_seconds());
        let staleness = staleness(waited, self.max_age_secs, self.stale_policy);
        if staleness == Staleness::Skip {
            info!(query_id = %query.query_id, waited_secs = waited, "skipping a stale query");
            return None;
        }
        let status = query
            .context
            .get("command")
            .and_then(serde_json::Value::as_str)
            == Some("status");
        let mut answer = if status {
            self.status(query).await
        } else {
            self.answer(query).await
        };
        if let Staleness::Late(waited) = staleness {
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
            original_message_id: query.original_message_id,
            response_text: answer.text,
            channel_id: query.channel_id,
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
            guild_id: query.guild_id,
            extra: Map::new(),
        })
    }

    async fn answer(&self, query: &BotQuery) -> Answer {
        tracing::debug!(query_id = %query.query_id, question = %query.question, "answering");
        // Every choice acknowledged before the question was read binds its answer (a member
        // who just ran forget-me is not quoted); not knowing them is an outage, said so.
        if let Err(err) = self.retriever.gate.barrier().await {
            warn!(query_id = %query.query_id, error = %err, "the community's choices are not known to be current; answering that the index is unavailable");
            return compose(Outcome::IndexDown);
        }
        let (retrieved, embedding) = match self.retriever.retrieve_embedded(query).await {
            Ok(retrieved) => retrieved,
            Err(err) => {
                warn!(query_id = %query.query_id, error = %err, "retrieval failed; answering that the index is unavailable");
                return compose(Outcome::IndexDown);
            }
        };
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        if retrieved.is_empty() {
            // Kept for the moderators: a question someone could answer once, and RTFM next time.
            if let Some(asked_before) = &self.asked_before {
                asked_before.remember(query, embedding, now, false).await;
            }
            return compose(Outcome::NothingRelevant);
        }
        let mut answer = self.explain(query, &retrieved).await;
        if let Some(asked_before) = &self.asked_before {
            if let Some(link) = asked_before.find(query, &embedding, now).await {
                answer
                    .text
                    .push_str(&format!("\n\n{} <{link}>", prompt::ASKED_BEFORE));
            }
            asked_before.remember(query, embedding, now, true).await;
        }
        answer
    }

    /// `/rtfm-admin status` for the query's guild (the bot checked the asker may see it).
    async fn status(&self, query: &BotQuery) -> Answer {
        let (Some(guild), Some(asked_before)) = (query.guild_id, &self.asked_before) else {
            return Answer::plain(crate::prompt::STATUS_UNAVAILABLE, "status", true);
        };
        if let Err(err) = self.retriever.gate.barrier().await {
            warn!(error = %err, "the community's choices are not known to be current");
        }
        let overview = crate::status::Overview {
            messages: self.retriever.store.as_ref(),
            questions: asked_before.store.as_ref(),
            embedder: &self.retriever.embedder,
            gate: &self.retriever.gate,
        };
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        match overview.report(guild, now).await {
            Ok(report) => {
                info!(query_id = %query.query_id, counts = ?crate::status::counts(&report), "status reported");
                Answer::plain(&crate::status::render(&report), "status", false)
            }
            Err(err) => {
                warn!(query_id = %query.query_id, error = %err, "the status could not be read");
                Answer::plain(crate::prompt::STATUS_UNAVAILABLE, "status", true)
            }
        }
    }

    /// The answer from the evidence: the model's, or the extractive one.
    async fn explain(&self, query: &BotQuery, retrieved: &Retrieved) -> Answer {
        let Some(model) = &self.model else {
            return compose(Outcome::NoModel(retrieved));
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
            Ok(text) => compose(Outcome::Model {
                retrieved,
                sources: &sources,
                text: &text,
                provider: model.kind().as_str(),
                model: model.model_name(),
            }),
            Err(err) => {
                warn!(query_id = %query.query_id, error = %err, "model failed; falling back to the extractive answer");
                compose(Outcome::ModelFailed(retrieved))
            }
        }
    }
}

struct Answer {
    text: String,
    cited_ids: Vec<MessageId>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Role;
    use crate::retrieval::SourceGroup;

    fn message(id: &str, content: &str, role: Role) -> SourceMessage {
        SourceMessage {
            content: content.into(),
            ..SourceMessage::sample(id.parse().expect("an id"), role)
        }
    }

    fn evidence() -> Retrieved {
        Retrieved {
            groups: vec![SourceGroup {
                hit_id: 2.into(),
                similarity: 0.8,
                messages: vec![
                    message("2", "how do I rotate the deploy key?", Role::Hit),
                    message("3", "run `vaultctl rotate --key deploy`", Role::Answer),
                ],
            }],
        }
    }

    #[test]
    fn age_decides_fresh_late_or_skipped() {
        assert_eq!(
            staleness(Some(10), 3600, StalePolicy::Skip),
            Staleness::Fresh
        );
        assert_eq!(
            staleness(Some(3600), 3600, StalePolicy::Skip),
            Staleness::Fresh
        );
        assert_eq!(
            staleness(Some(3601), 3600, StalePolicy::Answer),
            Staleness::Late(3601)
        );
        assert_eq!(
            staleness(Some(3601), 3600, StalePolicy::Skip),
            Staleness::Skip
        );
        assert_eq!(staleness(None, 3600, StalePolicy::Skip), Staleness::Fresh);
    }

    #[test]
    fn no_model_quotes_the_evidence_undegraded() {
        let retrieved = evidence();
        let answer = compose(Outcome::NoModel(&retrieved));
        assert_eq!((answer.provider, answer.degraded), ("extractive", false));
        assert!(answer.text.contains("vaultctl"), "{}", answer.text);
        assert_eq!(answer.cited_ids, vec!["2", "3"]);
        assert!((answer.confidence - 0.8).abs() < 1e-6);
    }

    #[test]
    fn a_failing_model_or_open_breaker_gives_the_labelled_extractive_answer() {
        let retrieved = evidence();
        let answer = compose(Outcome::ModelFailed(&retrieved));
        assert_eq!((answer.provider, answer.degraded), ("extractive", true));
        assert!(
            answer.text.starts_with(prompt::DEGRADED_LABEL.trim_end()),
            "{}",
            answer.text
        );
        assert!(answer.text.contains("vaultctl"));
    }

    #[test]
    fn the_model_answer_keeps_its_provider_model_and_valid_citations() {
        let retrieved = evidence();
        let sources = retrieved.numbered();
        let answer = compose(Outcome::Model {
            retrieved: &retrieved,
            sources: &sources,
            text: "Run the rotate command [2].",
            provider: "gemini",
            model: "gemini-2.5-flash",
        });
        assert_eq!(
            (answer.provider, answer.model.as_str(), answer.degraded),
            ("gemini", "gemini-2.5-flash", false)
        );
        assert_eq!(answer.cited_ids, vec!["3"]);
    }

    #[test]
    fn nothing_relevant_is_not_found_and_an_unreachable_index_is_degraded() {
        let answer = compose(Outcome::NothingRelevant);
        assert_eq!(
            (
                answer.text.as_str(),
                answer.degraded,
                answer.cited_ids.len()
            ),
            (prompt::NOT_FOUND, false, 0)
        );
        let answer = compose(Outcome::IndexDown);
        assert_eq!(
            (answer.text.as_str(), answer.degraded),
            (prompt::INDEX_DOWN, true)
        );
    }
}
