//! One way to run a service's long-lived tasks: if one fails, or ends without being asked to,
//! the others are told to stop (the process exits non-zero rather than limping on); once asked
//! to stop, they get a bounded grace period to finish the work in hand, and whatever is still
//! running then is aborted (its input offsets are uncommitted, so the next owner redoes it).

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// Default grace period after a stop request (SIGTERM): well inside the 30 s that Docker and
/// Kubernetes wait before SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

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
}
