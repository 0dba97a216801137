//! Registering the topics' JSON Schemas with a schema registry (`SCHEMA_REGISTRY_URL`), through
//! the Confluent-compatible REST API that Confluent Schema Registry, Karapace and Apicurio
//! (`/apis/ccompat/v7`) all serve. Records stay plain JSON on the wire: the registry is the
//! published contract, and its compatibility check is the gate that stops a schema change which
//! would break existing consumers.
//!
//! For each subject `<topic>-value`, in order:
//! 1. `GET /config/{subject}`; unless the subject already has a level at least as strict as
//!    BACKWARD (`BACKWARD_TRANSITIVE`, `FULL`, `FULL_TRANSITIVE`, which an operator may have
//!    chosen and is left alone), `PUT /config/{subject}` `{"compatibility": "BACKWARD"}` —
//!    consumers on the new schema must read records written with the old one (so a field may
//!    be added, not made required or retyped);
//! 2. `POST /compatibility/subjects/{subject}/versions/latest` with the schema — 404 means the
//!    subject is new; `{"is_compatible": false, "messages": [...]}` refuses the change;
//! 3. `POST /subjects/{subject}/versions` `{"schemaType": "JSON", "schema": "<text>"}` →
//!    `{"id": N}` (the same schema again returns the same id; 409 is an incompatible one).

use std::time::Duration;

use serde_json::{json, Value};

/// What registering one subject came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry said the new schema would break consumers of the registered one.
    #[error(
        "the schema registry refused the new schema of {subject}: it is not BACKWARD compatible \
         with the registered one, so consumers that read {subject} could not read what RTFM \
         writes ({reasons}). Nothing was registered. A field may be added as optional; \
         renaming, retyping or requiring one needs a new topic."
    )]
    Incompatible { subject: String, reasons: String },
    #[error("the schema registry at {url} answered {status} to {what}: {body}")]
    Refused {
        url: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("the schema registry at {url} is unreachable ({what}): {source}")]
    Unreachable {
        url: String,
        what: String,
        source: reqwest::Error,
    },
}

/// A registry's Confluent-compatible API at `base_url` (e.g. `http://registry:8081`, or
/// Apicurio's `http://registry:8080/apis/ccompat/v7`).
pub struct Registry {
    base_url: String,
    client: reqwest::Client,
}

/// The registry's media type (it also accepts `application/json`).
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl Registry {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            client,
        }
    }

    /// Registers `schema` under `subject` with BACKWARD compatibility, refusing an
    /// incompatible change before anything is written.
    pub async fn register(
        &self,
        subject: &str,
        schema: &Value,
    ) -> Result<Registered, RegistryError> {
        let body = json!({"schemaType": "JSON", "schema": schema.to_string()});
        let level = self
            .call(
                reqwest::Method::GET,
                &format!("/config/{subject}"),
                &Value::Null,
                "reading the subject's compatibility",
            )
            .await;
        let current = match level {
            // Confluent answers `compatibilityLevel` (and takes `compatibility` on PUT).
            Ok(answer) => answer["compatibilityLevel"]
                .as_str()
                .or(answer["compatibility"].as_str())
                .map(str::to_string),
            // No level of its own (Confluent: 404 40408; Apicurio: 404 for a new subject).
            Err(RegistryError::Refused { status: 404, .. }) => None,
            Err(err) => return Err(err),
        };
        if !current.as_deref().is_some_and(at_least_backward) {
            self.call(
                reqwest::Method::PUT,
                &format!("/config/{subject}"),
                &json!({"compatibility": "BACKWARD"}),
                "setting BACKWARD compatibility",
            )
            .await?;
        }
        let check = self
            .call(
                reqwest::Method::POST,
                &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
                &body,
                "the compatibility check",
            )
            .await;
        match check {
            Ok(answer) if answer["is_compatible"] == json!(false) => {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    reasons: reasons(&answer),
                })
            }
            Ok(_) => {}
            // No version yet: nothing to be compatible with.
            Err(RegistryError::Refused { status: 404, .. }) => {}
            Err(err) => return Err(err),
        }
        match self
            .call(
                reqwest::Method::POST,
                &format!("/subjects/{subject}/versions"),
                &body,
                "registering the schema",
            )
            .await
        {
            Ok(answer) => Ok(Registered {
                subject: subject.to_string(),
                id: answer["id"].as_i64().unwrap_or_default(),
            }),
            Err(RegistryError::Refused {
                status: 409, body, ..
            }) => Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                reasons: body,
            }),
            Err(err) => Err(err),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<Value, RegistryError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .client
            .request(method, &url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: without_credentials(&self.base_url),
                what: what.to_string(),
                source: source.without_url(),
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(RegistryError::Refused {
                url: without_credentials(&self.base_url),
                what: what.to_string(),
                status,
                body: text.chars().take(500).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Whether a compatibility level keeps consumers on a new schema able to read old records.
fn at_least_backward(level: &str) -> bool {
    matches!(
        level,
        "BACKWARD" | "BACKWARD_TRANSITIVE" | "FULL" | "FULL_TRANSITIVE"
    )
}

/// `url` with any `user:password@` replaced, for messages.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// The registry's reasons, as one line.
fn reasons(answer: &Value) -> String {
    match answer["messages"].as_array() {
        Some(messages) if !messages.is_empty() => messages
            .iter()
            .map(|message| message.as_str().map_or(message.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        // Apicurio's check answers a bare `false`; its 409 on registration would say more,
        // but nothing is registered to find out.
        _ => "the registry gave no details; compare with GET /subjects/<subject>/versions/latest"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_levels_are_kept_and_weaker_ones_raised_to_backward() {
        for kept in ["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"] {
            assert!(at_least_backward(kept), "{kept}");
        }
        for raised in ["NONE", "FORWARD", "FORWARD_TRANSITIVE", ""] {
            assert!(!at_least_backward(raised), "{raised}");
        }
    }

    #[test]
    fn credentials_in_the_registry_url_never_reach_a_message() {
        assert_eq!(
            without_credentials("https://user:s3cret@registry.example:8081/apis/ccompat/v7"),
            "https://***@registry.example:8081/apis/ccompat/v7"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:8081"),
            "http://127.0.0.1:8081"
        );
    }
}
