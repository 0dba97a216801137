//! Registering the topics' JSON Schemas with a schema registry (`SCHEMA_REGISTRY_URL`), through
//! the Confluent-compatible REST API that Confluent Schema Registry, Karapace and Apicurio
//! (`/apis/ccompat/v7`) all serve. Records stay plain JSON on the wire: the registry is the
//! published contract, and its compatibility check is the gate that stops a schema change which
//! would break existing consumers.
//!
//! For each subject `<topic>-value`, in order:
//! 1. `PUT /config/{subject}` `{"compatibility": "BACKWARD"}` — consumers on the new schema must
//!    read records written with the old one (so a field may be added, not made required or
//!    retyped);
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
         writes ({reasons}). Nothing was changed. A field may be added as optional; renaming, \
         retyping or requiring one needs a new topic."
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
        self.call(
            reqwest::Method::PUT,
            &format!("/config/{subject}"),
            &json!({"compatibility": "BACKWARD"}),
            "setting BACKWARD compatibility",
        )
        .await?;
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
        let response = self
            .client
            .request(method, &url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(body)
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.base_url.clone(),
                what: what.to_string(),
                source,
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(RegistryError::Refused {
                url: self.base_url.clone(),
                what: what.to_string(),
                status,
                body: text.chars().take(500).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
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
