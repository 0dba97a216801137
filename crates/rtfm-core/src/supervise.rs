//! One way to run a service's long-lived tasks: if one fails, or ends without being asked to,
//! the others are told to stop (the process exits non-zero rather than limping on); once asked
//! to stop, they get a bounded grace period to finish the work in hand, and whatever is still
//! running then is aborted (its input offsets are uncommitted, so the next owner redoes it).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::kafka::Producer;
use crate::telemetry::{self, Readiness};

/// Default grace period after a stop request (SIGTERM): well inside the 30 s that Docker and
/// Kubernetes wait before SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

/// Runs a binary's async part on a multi-threaded runtime, as `#[tokio::main]` would, and
/// leaves once it is done even if a blocking read is still waiting. `main` stays synchronous
/// so that [`crate::config::parse`] changes the environment before any runtime thread exists.
pub fn block_on(future: impl Future<Output = std::process::ExitCode>) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(future);
            // A blocking read that nobody can cancel (tokio's stdin: the console waiting for a
            // line) would hold the runtime's drop, and with it the exit, until the user pressed
            // Enter; SIGTERM must end the process. The work itself is done by now.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            code
        }
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `tasks` until they have all ended. `stop` is cancelled when a task fails or ends on its
/// own; after `stop` is cancelled (by anyone) the remaining tasks have `grace` to end. Returns
/// the first failure.
pub async fn supervise(
    service: &str,
    mut tasks: JoinSet<anyhow::Result<()>>,
    stop: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut outcome = Ok(());
    loop {
        let joined = if stop.is_cancelled() {
            match tokio::time::timeout(grace, tasks.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    warn!(
                        service,
                        still_running = tasks.len(),
                        grace_secs = grace.as_secs_f64(),
                        "grace period over; aborting the work in hand (it stays uncommitted for the next owner)"
                    );
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        } else {
            tokio::select! {
                joined = tasks.join_next() => joined,
                _ = stop.cancelled() => continue,
            }
        };
        let Some(joined) = joined else { break };
        let result = joined
            .map_err(anyhow::Error::from)
            .and_then(|result| result);
        match result {
            Err(err) => {
                error!(service, error = %format!("{err:#}"), "a task failed; shutting down");
                if outcome.is_ok() {
                    outcome = Err(err);
                }
            }
            Ok(()) if !stop.is_cancelled() => {
                error!(
                    service,
                    "a task ended without being asked to; shutting down"
                );
                if outcome.is_ok() {
                    outcome = Err(anyhow::anyhow!("a {service} task ended unexpectedly"));
                }
            }
            Ok(()) => {}
        }
        stop.cancel();
    }
    outcome
}

/// `HTTP_ADDR` and `SHUTDOWN_GRACE_SECS`: the flags every service has.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// /healthz, /readyz and /metrics [default: 127.0.0.1:8080 for the bot, 127.0.0.1:8081 for
    /// the processor].
    #[arg(long = "http-addr", env = "HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Seconds the service may take, after SIGTERM, to finish the work in hand (the replies,
    /// the batch or the question); what is still running then is left uncommitted for the next
    /// owner.
    #[arg(
        long = "shutdown-grace-secs",
        env = "SHUTDOWN_GRACE_SECS",
        default_value_t = 20
    )]
    pub shutdown_grace_secs: u64,
}

/// What every service shares around its own tasks: the bound `/healthz` `/readyz` `/metrics`
/// endpoint, the readiness it reports, the stop token its tasks watch, and the way it ends
/// (supervised tasks, then the endpoint, then a producer flush).
pub struct Service {
    name: &'static str,
    http_addr: SocketAddr,
    http_task: JoinHandle<()>,
    /// What `/readyz` reports.
    pub readiness: Readiness,
    /// Cancelled by the caller's token or by a failing task (then its siblings stop too); the
    /// caller's token stays untouched.
    pub stop: CancellationToken,
    grace: Duration,
}

impl Service {
    /// Binds `HTTP_ADDR` (else `default_addr`; port 0: any free port) with `not_ready_yet`
    /// reported as not ready. The tasks get `SHUTDOWN_GRACE_SECS` after a stop request, at
    /// least 1 s.
    pub async fn bind(
        name: &'static str,
        args: &ServiceArgs,
        default_addr: SocketAddr,
        not_ready_yet: &[&str],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let http_addr = args.http_addr.unwrap_or(default_addr);
        let grace = Duration::from_secs(args.shutdown_grace_secs);
        let readiness = Readiness::new();
        for component in not_ready_yet {
            readiness.set(component, false);
        }
        let stop = shutdown.child_token();
        let (http_addr, http_task) = telemetry::serve(http_addr, readiness.clone(), stop.clone())
            .await
            .with_context(|| format!("while binding HTTP_ADDR {http_addr}"))?;
        info!(service = name, %http_addr, "{name} starting");
        Ok(Self {
            name,
            http_addr,
            http_task,
            readiness,
            stop,
            grace: grace.max(Duration::from_secs(1)),
        })
    }

    /// Where the endpoint listens (the bound port).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Runs `tasks` under [`supervise`], then stops the endpoint and flushes `producer`.
    pub async fn run(
        self,
        tasks: JoinSet<anyhow::Result<()>>,
        producer: &Producer,
    ) -> anyhow::Result<()> {
        let outcome = supervise(self.name, tasks, self.stop.clone(), self.grace).await;
        let _ = self.http_task.await;
        if let Err(err) = producer.flush(Duration::from_secs(10)).await {
            warn!(service = self.name, error = %err, "producer flush at shutdown failed");
        }
        info!(service = self.name, "{} stopped", self.name);
        outcome
    }
}

/// Calls `tick` now and then every `period` until `shutdown` fires (for monitors and watchers;
/// a slow tick delays the next one rather than piling up).
pub async fn every<F, Fut>(
    period: Duration,
    shutdown: &CancellationToken,
    mut tick: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_the_outcome() {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let waiting = stop.clone();
        tasks.spawn(async move {
            waiting.cancelled().await;
            Ok(())
        });
        tasks.spawn(async { Err(anyhow::anyhow!("boom")) });
        let outcome = supervise("test", tasks, stop.clone(), DEFAULT_GRACE).await;
        assert!(stop.is_cancelled());
        assert_eq!(outcome.expect_err("failed").to_string(), "boom");
    }

    #[tokio::test]
    async fn a_task_ending_on_its_own_is_a_failure() {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(async { Ok(()) });
        assert!(supervise("test", tasks, stop, DEFAULT_GRACE).await.is_err());
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_aborted_after_the_grace_period() {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        stop.cancel();
        // Without the abort this would wait an hour; the outer bound only turns a hang into a
        // failure.
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            supervise("test", tasks, stop, Duration::from_millis(100)),
        )
        .await
        .expect("returns after the grace period");
        assert!(outcome.is_ok(), "asked to stop: not a failure");
    }

    #[tokio::test]
    async fn every_ticks_each_period_until_stopped_and_never_after() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let stop = CancellationToken::new();
        let ticks = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&ticks);
        let watcher = tokio::spawn({
            let stop = stop.clone();
            async move {
                every(Duration::from_millis(10), &stop, || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
            }
        });
        tokio::time::timeout(Duration::from_secs(30), async {
            while ticks.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("ticks again and again");
        stop.cancel();
        watcher.await.expect("no panic").expect("ends cleanly");
        let at_stop = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            at_stop,
            "no tick after the stop"
        );
    }
}
