//! Test support, used only as a dev-dependency.
//!
//! - [`services`]: reach the **real** Kafka broker and Chroma server started by
//!   `scripts/test.sh` (fails loudly with how to start them — never skips);
//! - [`eventually`]: bounded polling instead of sleeps;
//! - [`fake_model`]: a fake Gemini/OpenAI HTTP API (third-party APIs are the only fakes);
//! - [`fake_discord`]: a fake Discord (REST under `/api/v10` + gateway websocket);
//! - [`process`]: our binaries as child processes (SIGKILL, SIGTERM, restart, logs);
//! - [`chroma`]: a private Chroma server for tests that must stop and restart it;
//! - [`topic`]: one typed reader of a topic (records with partition and offset);
//! - [`repo`]: the repository's own files, corpus and documented payloads;
//! - [`app`]: our services in-process (config from flags, a running app and its stop).

pub mod app;
pub mod chroma;
pub mod chroma_proxy;
pub mod fake_discord;
pub mod fake_model;
pub mod process;
pub mod repo;
pub mod services;
pub mod topic;

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

/// `GET url` → (status, body); `None` when nothing answers.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// `POST url` with a JSON body → (status, JSON answer or `null`); panics if nothing answers.
pub async fn http_post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A TCP port on 127.0.0.1 that is free right now, for a process started next to listen on.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), never handed out twice by
/// this process: a port from that range can be taken, between this call and the listener's
/// bind, by any outgoing connection (the Kafka clients of a parallel test open many), and the
/// listener then fails to start.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (
        ephemeral_from.saturating_sub(12_000).max(1_024),
        ephemeral_from,
    );
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..1_000 {
        // Random enough without a dependency: every `RandomState` has fresh keys.
        let random = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            std::time::Instant::now(),
        );
        let port = low + (random % u64::from(high - low)) as u16;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// The value of a Prometheus sample `name{labels}` in a `/metrics` text.
pub fn metric_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|line| {
            line.starts_with(name_and_labels) && line[name_and_labels.len()..].starts_with(' ')
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
