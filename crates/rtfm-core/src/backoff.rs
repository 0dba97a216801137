//! One capped, jittered exponential backoff for every loop that waits and retries (Chroma
//! outages, Kafka hiccups, Discord errors, dead-letter writes).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// `initial`, doubling up to `max`, each wait jittered by ±20 % so instances that failed
/// together do not retry in lockstep. `reset` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The next wait (jittered), and doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random::<f64>() * 0.4 + 0.8;
        base.mul_f64(jitter)
    }

    /// Back to `initial` (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps the next delay; false if `shutdown` fired first (the caller should stop).
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let bases = [100.0, 200.0, 350.0, 350.0];
        for base in bases {
            let delay = backoff.next_delay().as_secs_f64() * 1000.0;
            assert!(
                delay >= base * 0.8 - 1e-6 && delay <= base * 1.2 + 1e-6,
                "{delay} vs {base}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn wait_returns_false_when_shut_down() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!backoff.wait(&shutdown).await);
    }
}
