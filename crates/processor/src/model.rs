//! Calls to a language model: Gemini `generateContent` or any OpenAI-compatible
//! `/chat/completions`, with a timeout per call, retries with jittered exponential backoff on
//! 429/5xx/timeouts (honouring `Retry-After`), and a circuit breaker that stops calling a model
//! that keeps failing (open after N consecutive failures, one half-open probe after a cooldown).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// What a model is asked: a system instruction and a user turn ([`crate::prompt`] writes it).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

/// Which model API answers questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    Gemini,
    Openai,
    /// No model: quote the best messages.
    Extractive,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Gemini => "gemini",
            ProviderKind::Openai => "openai",
            ProviderKind::Extractive => "extractive",
        }
    }
}

/// `ModelSettings`' defaults, defined once (the flags' defaults and `Default` use them).
pub mod defaults {
    pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
    pub const GEMINI_MODEL: &str = "gemini-2.5-flash";
    pub const OPENAI_BASE_URL: &str = "http://localhost:11434/v1";
    pub const OPENAI_MODEL: &str = "llama3.1";
    pub const TIMEOUT_SECS: u64 = 30;
    pub const MAX_RETRIES: u32 = 2;
    pub const BREAKER_THRESHOLD: u32 = 3;
    pub const BREAKER_COOLDOWN_SECS: u64 = 30;
    pub const RETRY_BASE_MS: u64 = 250;
}

/// Model settings. Secrets are `SecretString` (their `Debug` prints `[REDACTED]`).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelSettings {
    /// gemini | openai | extractive. Default: gemini when GEMINI_API_KEY is set, else extractive.
    #[arg(long = "llm-provider", env = "LLM_PROVIDER", value_enum)]
    pub provider: Option<ProviderKind>,
    /// Gemini API key (sent as the x-goog-api-key header).
    #[arg(long = "gemini-api-key", env = "GEMINI_API_KEY", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub gemini_api_key: Option<SecretString>,
    #[arg(
        long,
        env = "GEMINI_BASE_URL",
        default_value = defaults::GEMINI_BASE_URL
    )]
    pub gemini_base_url: String,
    #[arg(
        long = "gemini-model",
        env = "GEMINI_MODEL",
        default_value = defaults::GEMINI_MODEL
    )]
    pub gemini_model: String,
    /// Base URL of an OpenAI-compatible API, including `/v1` (Ollama: http://localhost:11434/v1).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = defaults::OPENAI_BASE_URL
    )]
    pub openai_base_url: String,
    /// Optional bearer key for the OpenAI-compatible API.
    #[arg(long = "openai-api-key", env = "OPENAI_API_KEY", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub openai_api_key: Option<SecretString>,
    #[arg(
        long = "openai-model",
        env = "OPENAI_MODEL",
        default_value = defaults::OPENAI_MODEL
    )]
    pub openai_model: String,
    /// Upper bound for one model call.
    #[arg(
        long = "llm-timeout-secs",
        env = "LLM_TIMEOUT_SECS",
        default_value_t = defaults::TIMEOUT_SECS
    )]
    pub timeout_secs: u64,
    /// Retries after the first attempt on 429/5xx/timeouts.
    #[arg(long = "llm-max-retries", env = "LLM_MAX_RETRIES", default_value_t = defaults::MAX_RETRIES)]
    pub max_retries: u32,
    /// Consecutive failed answers that open the circuit breaker.
    #[arg(
        long = "llm-breaker-threshold",
        env = "LLM_BREAKER_THRESHOLD",
        default_value_t = defaults::BREAKER_THRESHOLD
    )]
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one probe call.
    #[arg(
        long = "llm-breaker-cooldown-secs",
        env = "LLM_BREAKER_COOLDOWN_SECS",
        default_value_t = defaults::BREAKER_COOLDOWN_SECS
    )]
    pub breaker_cooldown_secs: u64,
    /// First retry delay; doubles per retry, with jitter.
    #[arg(
        long = "llm-retry-base-ms",
        env = "LLM_RETRY_BASE_MS",
        default_value_t = defaults::RETRY_BASE_MS
    )]
    pub retry_base_ms: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            provider: None,
            gemini_api_key: None,
            gemini_base_url: defaults::GEMINI_BASE_URL.into(),
            gemini_model: defaults::GEMINI_MODEL.into(),
            openai_base_url: defaults::OPENAI_BASE_URL.into(),
            openai_api_key: None,
            openai_model: defaults::OPENAI_MODEL.into(),
            timeout_secs: defaults::TIMEOUT_SECS,
            max_retries: defaults::MAX_RETRIES,
            breaker_threshold: defaults::BREAKER_THRESHOLD,
            breaker_cooldown_secs: defaults::BREAKER_COOLDOWN_SECS,
            retry_base_ms: defaults::RETRY_BASE_MS,
        }
    }
}

impl ModelSettings {
    /// The provider in effect: explicit, else gemini with a key, else extractive.
    pub fn effective_provider(&self) -> ProviderKind {
        self.provider.unwrap_or(if self.gemini_api_key.is_some() {
            ProviderKind::Gemini
        } else {
            ProviderKind::Extractive
        })
    }

    pub fn model_name(&self) -> &str {
        match self.effective_provider() {
            ProviderKind::Gemini => &self.gemini_model,
            ProviderKind::Openai => &self.openai_model,
            ProviderKind::Extractive => "extractive",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("circuit breaker open: the model failed repeatedly, not calling it for now")]
    BreakerOpen,
    #[error("model call timed out after {0:?}")]
    Timeout(Duration),
    #[error("model API answered HTTP {0}")]
    Status(u16),
    #[error("model API unreachable: {0}")]
    Transport(String),
    #[error("model API answer not understood: {0}")]
    BadResponse(String),
}

impl ModelError {
    fn is_retryable(&self) -> bool {
        match self {
            ModelError::Timeout(_) | ModelError::Transport(_) => true,
            ModelError::Status(code) => *code == 429 || *code >= 500,
            ModelError::BreakerOpen | ModelError::BadResponse(_) => false,
        }
    }
}

/// A configured model API client.
pub struct ModelClient {
    kind: ProviderKind,
    settings: ModelSettings,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
}

impl ModelClient {
    /// `None` for the extractive provider.
    pub fn new(settings: &ModelSettings) -> anyhow::Result<Option<Self>> {
        let kind = settings.effective_provider();
        if kind == ProviderKind::Extractive {
            return Ok(None);
        }
        if kind == ProviderKind::Gemini && settings.gemini_api_key.is_none() {
            anyhow::bail!("LLM_PROVIDER=gemini needs GEMINI_API_KEY");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.clamp(1, 10)))
            .build()?;
        Ok(Some(Self {
            kind,
            settings: settings.clone(),
            http,
            breaker: Mutex::new(Breaker::new(
                settings.breaker_threshold,
                Duration::from_secs(settings.breaker_cooldown_secs),
            )),
        }))
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn model_name(&self) -> &str {
        self.settings.model_name()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .lock()
            .map(|breaker| breaker.state(Instant::now()))
            .unwrap_or(BreakerState::Open)
    }

    /// Answers `prompt`, retrying transient failures; every failure that survives the retries
    /// counts against the breaker.
    pub async fn complete(&self, prompt: &Prompt) -> Result<String, ModelError> {
        let allowed = self
            .breaker
            .lock()
            .map(|mut breaker| breaker.allow(Instant::now()))
            .unwrap_or(false);
        if !allowed {
            return Err(ModelError::BreakerOpen);
        }
        let mut attempt = 0;
        let result = loop {
            let started = Instant::now();
            let outcome = self.call_once(prompt).await;
            crate::metrics::MODEL_LATENCY
                .with_label_values(&[self.kind.as_str()])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(text) => break Ok(text),
                Err((err, retry_after))
                    if err.is_retryable() && attempt < self.settings.max_retries =>
                {
                    attempt += 1;
                    let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(error = %err, attempt, delay_ms = delay.as_millis() as u64, "model call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err((err, _)) => break Err(err),
            }
        };
        if let Ok(mut breaker) = self.breaker.lock() {
            match &result {
                Ok(_) => breaker.on_success(),
                Err(_) => breaker.on_failure(Instant::now()),
            }
        }
        result
    }

    /// Asks the API about the configured model (no generation, no cost): `Ok` if the key is
    /// accepted and the model exists; `Status(401 | 403 | 404)` names what to fix.
    pub async fn probe(&self) -> Result<(), ModelError> {
        let request = match self.kind {
            ProviderKind::Gemini => self.request(
                reqwest::Method::GET,
                &format!("/v1beta/models/{}", self.settings.gemini_model),
            ),
            ProviderKind::Openai | ProviderKind::Extractive => self.request(
                reqwest::Method::GET,
                &format!("/models/{}", self.settings.openai_model),
            ),
        };
        let response = request
            .send()
            .await
            .map_err(|err| ModelError::Transport(err.without_url().to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(ModelError::Status(status.as_u16())),
        }
    }

    /// A request to the provider's API at `path` (under its base URL), with its key.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        match self.kind {
            ProviderKind::Gemini => {
                let url = format!(
                    "{}{path}",
                    self.settings.gemini_base_url.trim_end_matches('/')
                );
                let request = self.http.request(method, url);
                match &self.settings.gemini_api_key {
                    Some(key) => request.header("x-goog-api-key", key.expose_secret()),
                    None => request,
                }
            }
            ProviderKind::Openai | ProviderKind::Extractive => {
                let url = format!(
                    "{}{path}",
                    self.settings.openai_base_url.trim_end_matches('/')
                );
                let request = self.http.request(method, url);
                match &self.settings.openai_api_key {
                    Some(key) => request.bearer_auth(key.expose_secret()),
                    None => request,
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .retry_base_ms
            .saturating_mul(1 << attempt.min(10));
        let jittered = rand::rng().random_range(base / 2..=base.max(1));
        Duration::from_millis(jittered.min(10_000))
    }

    async fn call_once(&self, prompt: &Prompt) -> Result<String, (ModelError, Option<Duration>)> {
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let request = match self.kind {
            ProviderKind::Gemini => {
                let path = format!(
                    "/v1beta/models/{}:generateContent",
                    self.settings.gemini_model
                );
                self.request(reqwest::Method::POST, &path).json(&json!({
                    "systemInstruction": {"parts": [{"text": prompt.system}]},
                    "contents": [{"role": "user", "parts": [{"text": prompt.user}]}],
                    "generationConfig": {"temperature": 0.2},
                }))
            }
            ProviderKind::Openai | ProviderKind::Extractive => self
                .request(reqwest::Method::POST, "/chat/completions")
                .json(&json!({
                    "model": self.settings.openai_model,
                    "messages": [
                        {"role": "system", "content": prompt.system},
                        {"role": "user", "content": prompt.user},
                    ],
                    "temperature": 0.2,
                })),
        };
        let response = request.send().await.map_err(|err| {
            if err.is_timeout() {
                (ModelError::Timeout(timeout), None)
            } else {
                // `without_url`: the URL may carry a key in query form for some gateways.
                (ModelError::Transport(err.without_url().to_string()), None)
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| retry_after(value, chrono::Utc::now(), MAX_RETRY_AFTER));
            return Err((ModelError::Status(status.as_u16()), retry_after));
        }
        let body: Value = response.json().await.map_err(|err| {
            if err.is_timeout() {
                (ModelError::Timeout(timeout), None)
            } else {
                (ModelError::BadResponse(err.without_url().to_string()), None)
            }
        })?;
        let text = match self.kind {
            ProviderKind::Gemini => {
                body["candidates"][0]["content"]["parts"]
                    .as_array()
                    .map(|parts| {
                        parts
                            .iter()
                            .filter_map(|part| part["text"].as_str())
                            .collect::<String>()
                    })
            }
            _ => body["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string),
        };
        match text {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err((
                ModelError::BadResponse("no text in the answer".into()),
                None,
            )),
        }
    }
}

/// The longest a provider's `Retry-After` may hold one attempt; past it the attempt waits this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A `Retry-After` value as a wait, at most `cap`: delay-seconds (a number; fractions, as some
/// providers send them, are kept) or an HTTP-date (RFC 9110: `Sun, 06 Nov 1994 08:49:37 GMT`,
/// measured from `now`). Anything else — NaN, infinities, negatives, garbage — is `None`
/// (the caller's own backoff applies); a date in the past is no wait. Never panics.
pub fn retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
    cap: Duration,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(secs.min(cap.as_secs_f64())));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (at.with_timezone(&chrono::Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(cap))
}

mod breaker;
pub use breaker::{Breaker, BreakerState};

#[cfg(test)]
mod tests;
