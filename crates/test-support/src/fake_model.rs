//! A fake model API speaking Gemini's `generateContent` and OpenAI's `/chat/completions`
//! shapes. It records every request and can be told to answer, fail with a status, rate-limit
//! with `Retry-After`, or stall.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// What the fake does with the next request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answer with this text.
    Answer(String),
    /// Answer with this HTTP status and an error body.
    Fail(u16),
    /// 429 with `Retry-After: secs`.
    RateLimit(u64),
    /// 429 with this `Retry-After` value verbatim (`NaN`, `-1`, an HTTP-date, …).
    RetryAfter(String),
    /// Wait this long, then answer (to trip client timeouts).
    Stall(Duration),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Behaviour>,
    default: Option<Behaviour>,
    /// Embedding inputs containing this are refused with 400 (a "poisoned" record).
    poison: Option<String>,
    /// Every request waits this long before it is answered (a provider's latency).
    latency: Option<Duration>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
    /// Embeddings derived from each text rather than from its position in the request.
    text_vectors: bool,
    /// `GET …/models/{model}` calls (start-up checks).
    model_checks: usize,
}

/// Gemini's documented limit for `batchEmbedContents`.
pub const GEMINI_MAX_BATCH: usize = 100;
/// OpenAI's documented limit of inputs per `/embeddings` request.
pub const OPENAI_MAX_BATCH: usize = 2048;

fn invalid_argument(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}),
        ),
    )
        .into_response()
}

#[derive(Clone)]
pub struct FakeModel {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeModel {
    /// Starts on a free port; by default answers "You can find it in the settings [1]."
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            default: Some(Behaviour::Answer(
                "You can find it in the settings [1].".into(),
            )),
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake model");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&shared);
            async move { handle(state, uri, headers, body).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    /// Base URL for `GEMINI_BASE_URL`.
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL for `OPENAI_BASE_URL`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Embedding requests with an input containing `marker` get 400 with a message naming it,
    /// as a provider refuses content it will never embed.
    pub fn refuse_embedding_of(&self, marker: &str) {
        self.lock().poison = Some(marker.to_string());
    }

    /// Behaviour for every request not covered by [`FakeModel::then`].
    pub fn always(&self, behaviour: Behaviour) {
        self.lock().default = Some(behaviour);
    }

    /// Behaviour for the next request only (queued in order).
    pub fn then(&self, behaviour: Behaviour) {
        self.lock().script.push_back(behaviour);
    }

    /// Every request waits `latency` before it is answered.
    pub fn delay_each(&self, latency: Duration) {
        self.lock().latency = Some(latency);
    }

    /// How many times a client asked about its model (`GET …/models/{model}`).
    pub fn model_checks(&self) -> usize {
        self.lock().model_checks
    }

    /// The most requests the fake was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Embeddings derived from each text (so their order can be checked), not its position.
    pub fn vectors_from_text(&self) {
        self.lock().text_vectors = true;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A distinct, unnormalised 4-d vector per position (the client normalises it).
fn fake_vector(index: usize) -> Vec<f64> {
    vec![1.0 + index as f64, 2.0, 0.0, 2.0]
}

/// A vector from a text's number (its digits), for order checks: `[n, 1, 0, 0]`.
fn text_vector(text: &str) -> Vec<f64> {
    let number: f64 = text
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0.0);
    vec![number, 1.0, 0.0, 0.0]
}

/// The vectors of `inputs`: from each text, or from its position.
fn vectors(inputs: &[String], from_text: bool) -> Vec<Vec<f64>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            if from_text {
                text_vector(text)
            } else {
                fake_vector(i)
            }
        })
        .collect()
}

/// Counts a request as in flight while it lives.
struct InFlight(Arc<Mutex<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.in_flight -= 1;
    }
}

async fn handle(state: Arc<Mutex<State>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    // A model's metadata (`GET …/models/{model}`), as a client checks its key at start: not
    // counted among the requests and not taking a scripted behaviour, refused only when every
    // call is (`always(Fail(..))`).
    if path.contains("/models/") && !path.contains(':') {
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.model_checks += 1;
        return match state.default {
            Some(Behaviour::Fail(status)) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(json!({"error": {"code": status, "message": "fake refusal"}})),
            )
                .into_response(),
            _ => axum::Json(json!({"name": path.rsplit('/').next().unwrap_or_default()}))
                .into_response(),
        };
    }
    let (behaviour, poison, latency, text_vectors) = {
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        state.requests.push(Recorded {
            path: path.clone(),
            headers,
            body: body.clone(),
        });
        let poison = state.poison.clone();
        let behaviour = state
            .script
            .pop_front()
            .or_else(|| state.default.clone())
            .unwrap_or(Behaviour::Fail(500));
        (behaviour, poison, state.latency, state.text_vectors)
    };
    let _in_flight = InFlight(Arc::clone(&state));
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    // The providers' documented input limits, checked before anything else.
    let inputs: Vec<String> = if path.ends_with(":batchEmbedContents") {
        let requests = body["requests"].as_array().cloned().unwrap_or_default();
        if requests.len() > GEMINI_MAX_BATCH {
            return invalid_argument(format!(
                "* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests can be in one batch"
            ));
        }
        requests
            .iter()
            .map(|r| {
                r["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    } else if path.ends_with("/embeddings") {
        let inputs = body["input"].as_array().cloned().unwrap_or_default();
        if inputs.len() > OPENAI_MAX_BATCH {
            return invalid_argument(format!(
                "'$.input' is invalid: at most {OPENAI_MAX_BATCH} inputs per request"
            ));
        }
        inputs
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_string())
            .collect()
    } else {
        Vec::new()
    };
    if let Some(marker) = &poison {
        if let Some(bad) = inputs
            .iter()
            .position(|text| text.contains(marker.as_str()))
        {
            return invalid_argument(format!(
                "input {bad} was refused by the provider's content policy"
            ));
        }
    }
    let text = match behaviour {
        Behaviour::Answer(text) => text,
        Behaviour::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                axum::Json(json!({"error": {"message": "fake failure"}})),
            )
                .into_response();
        }
        Behaviour::RateLimit(secs) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "slow down",
            )
                .into_response();
        }
        Behaviour::RetryAfter(value) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", value)],
                "slow down",
            )
                .into_response();
        }
        Behaviour::Stall(duration) => {
            tokio::time::sleep(duration).await;
            "late answer".to_string()
        }
    };
    if path.ends_with(":batchEmbedContents") {
        let embeddings: Vec<Value> = vectors(&inputs, text_vectors)
            .into_iter()
            .map(|values| json!({ "values": values }))
            .collect();
        return axum::Json(json!({ "embeddings": embeddings })).into_response();
    }
    if path.ends_with("/embeddings") {
        let data: Vec<Value> = vectors(&inputs, text_vectors)
            .into_iter()
            .enumerate()
            .map(|(i, values)| json!({"object": "embedding", "index": i, "embedding": values}))
            .collect();
        return axum::Json(json!({ "object": "list", "data": data })).into_response();
    }
    if path.ends_with(":generateContent") {
        axum::Json(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]
        }))
        .into_response()
    } else if path.ends_with("/chat/completions") {
        axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "unknown fake route").into_response()
    }
}
