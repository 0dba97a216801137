//! Logging, metrics and the operational HTTP endpoint every service mounts.
//!
//! - [`init_tracing`]: `tracing` with `RUST_LOG` (default `info`) and `LOG_FORMAT=json`, to
//!   stderr or ([`init_tracing_to`]) a file;
//! - [`metrics`]: Prometheus metrics shared by all services (services add their own to the
//!   default registry);
//! - [`Readiness`] + [`serve`]: `/healthz`, `/readyz`, `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr. JSON lines when `LOG_FORMAT=json`, human
/// text otherwise. Safe to call more than once (later calls are no-ops), which tests rely on.
pub fn init_tracing() {
    init_tracing_to(LogOutput::Stderr);
}

/// Where log lines go: stderr (services), or a file (the bot's console mode, whose terminal is
/// a chat and not a log).
#[derive(Debug)]
pub enum LogOutput {
    Stderr,
    File(std::fs::File),
}

/// [`init_tracing`] with the lines written to `output`.
pub fn init_tracing_to(output: LogOutput) {
    let filter = EnvFilter::new(log_directives(std::env::var("RUST_LOG").ok().as_deref()));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let (writer, ansi) = match output {
        // Colours only for a person at a terminal, never into a file or a log collector.
        LogOutput::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
        LogOutput::File(file) => (BoxMakeWriter::new(Mutex::new(file)), false),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// `RUST_LOG` (default `info`) plus `serenity::http=warn`: serenity's `Http::request` opens an
/// INFO span that records the whole request, route included — and the route of an interaction
/// follow-up carries the interaction token, a credential. Capping serenity's HTTP module at
/// `warn` keeps that span (and its token) out of every log line, whatever else is at `debug`.
pub fn log_directives(rust_log: Option<&str>) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or("info");
    format!("{base},serenity::http=warn")
}

/// Metrics every service shares.
pub mod metrics {
    use std::sync::LazyLock;

    use prometheus::{register_int_counter_vec, IntCounterVec};

    /// Undecodable records written to a dead-letter topic, by source topic.
    pub static DEAD_LETTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "rtfm_dead_lettered_total",
            "Records that failed to decode and went to the dead-letter topic",
            &["topic"]
        )
        // Registration fails only on a duplicate name, which this single static rules out.
        .expect("metric registers once")
    });
}

/// Named readiness flags (e.g. `kafka`, `chroma`), each with an optional reason. `/readyz` is
/// 200 only when all are true, and lists each with why it is not ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<String, ComponentState>>>,
}

/// Ready or not, and why not.
type ComponentState = (bool, Option<String>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, component: &str, ready: bool) {
        self.set_reason(component, ready, None);
    }

    /// Like `set`, with what is wrong (shown by `/readyz`; no secrets, no message content).
    pub fn set_reason(&self, component: &str, ready: bool, reason: Option<String>) {
        if let Ok(mut components) = self.components.lock() {
            components.insert(component.to_string(), (ready, reason));
        }
    }

    pub fn is_ready(&self) -> bool {
        self.components
            .lock()
            .map(|components| {
                !components.is_empty() && components.values().all(|(ready, _)| *ready)
            })
            .unwrap_or(false)
    }

    /// `component: ready` or `component: not ready (reason)` lines.
    pub fn report(&self) -> String {
        self.components
            .lock()
            .map(|components| {
                components
                    .iter()
                    .map(|(name, (ready, reason))| match (ready, reason) {
                        (true, _) => format!("{name}: ready\n"),
                        (false, Some(reason)) => format!("{name}: not ready ({reason})\n"),
                        (false, None) => format!("{name}: not ready\n"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Binds `addr` (port 0 picks a free one) and serves the operational endpoints until
/// `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "operational HTTP endpoint failed");
        }
    });
    tracing::info!(%bound, "serving /healthz, /readyz, /metrics");
    Ok((bound, handle))
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, readiness.report())
}

async fn metrics_text() -> (StatusCode, String) {
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_to_string(&prometheus::gather()) {
        Ok(text) => (StatusCode::OK, text),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

/// The process exit code for a service's result, logging the error chain once.
pub fn exit_code(service: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "{service} failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A token cancelled on SIGINT (Ctrl-C) or SIGTERM: the one shutdown signal of a process.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        trigger.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        trigger.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serenity_http_stays_at_warn_whatever_rust_log_says() {
        assert_eq!(log_directives(None), "info,serenity::http=warn");
        assert_eq!(log_directives(Some("debug")), "debug,serenity::http=warn");
        assert_eq!(
            log_directives(Some(" bot=debug ")),
            "bot=debug,serenity::http=warn"
        );
    }

    #[test]
    fn readiness_needs_every_component() {
        let readiness = Readiness::new();
        assert!(!readiness.is_ready(), "nothing registered is not ready");
        readiness.set("kafka", true);
        readiness.set("chroma", false);
        assert!(!readiness.is_ready());
        assert_eq!(readiness.report(), "chroma: not ready\nkafka: ready\n");
        readiness.set("chroma", true);
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn endpoints_answer_health_readiness_and_metrics() {
        let readiness = Readiness::new();
        readiness.set("kafka", false);
        let shutdown = CancellationToken::new();
        let (addr, handle) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            readiness.clone(),
            shutdown.clone(),
        )
        .await
        .expect("binds");
        metrics::DEAD_LETTERED.with_label_values(&["t"]).inc();
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        readiness.set("kafka", true);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("rtfm_dead_lettered_total"));
        shutdown.cancel();
        handle.await.expect("server stops");
    }
}
