//! Test support, used only as a dev-dependency.
//!
//! - [`services`]: reach the **real** Kafka broker and Chroma server started by
//!   `scripts/test.sh` (fails loudly with how to start them — never skips);
//! - [`eventually`]: bounded polling instead of sleeps;
//! - [`fake_model`]: a fake Gemini/OpenAI HTTP API (third-party APIs are the only fakes);
//! - [`chroma`]: a private Chroma server for tests that must stop and restart it.

pub mod chroma;
pub mod fake_model;
pub mod services;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// A short random suffix for private topics, groups and collections.
pub fn unique_suffix() -> String {
    format!("-t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
