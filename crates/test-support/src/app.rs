//! Our services in-process, as `main` runs them (the `spawn_app` of zero-to-production): a
//! config parsed from the same flags a user passes, and a running app stopped through its
//! shutdown token. The service-specific wrappers (`TestProcessor`, `TestBot`) live beside their
//! crate's tests: `test-support` is a dependency of every crate's tests, so it cannot depend on
//! the services themselves.

use std::future::Future;
use std::time::Duration;

use rtfm_core::kafka::KafkaConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(clap::Parser)]
#[command(args_override_self = true)] // `extra` may override the flags set before it
struct Cli<C: clap::Args> {
    #[command(flatten)]
    config: C,
}

/// A service's config from its command-line flags: the test's private topics on the real
/// broker, any free HTTP port, then `extra` (which may override either).
pub fn config<C: clap::Args>(binary: &str, kafka: &KafkaConfig, extra: &[String]) -> C {
    let mut args = vec![
        binary.to_string(),
        "--bootstrap-servers".into(),
        kafka.bootstrap_servers.clone(),
        // `=`: the suffix starts with a dash.
        format!("--topic-suffix={}", kafka.topic_suffix),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(extra.iter().cloned());
    <Cli<C> as clap::Parser>::try_parse_from(args)
        .unwrap_or_else(|err| panic!("the test's {binary} flags parse: {err}"))
        .config
}

/// A service running in-process until [`Running::stop`].
pub struct Running {
    pub shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
    name: &'static str,
}

impl Running {
    /// Spawns `run(shutdown)` on the test's runtime.
    pub fn spawn<F>(name: &'static str, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let running = run(shutdown.clone());
        Self::spawn_built(name, shutdown, running)
    }

    /// Spawns an app already built with `shutdown` as its token (its `run_until_stopped`).
    pub fn spawn_built<F>(name: &'static str, shutdown: CancellationToken, running: F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            shutdown,
            handle: tokio::spawn(running),
            name,
        }
    }

    /// Whether it has ended (by itself: a failure, unless it was asked to stop).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Asks it to stop (as SIGTERM does) and expects a clean end within 30 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let name = self.name;
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .unwrap_or_else(|_| panic!("the {name} stops within 30 s"))
            .unwrap_or_else(|err| panic!("the {name} did not panic: {err}"))
            .unwrap_or_else(|err| panic!("the {name} ends cleanly: {err:#}"));
    }
}
