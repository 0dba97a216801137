//! Per-user trigger rate limit (pure): at most `limit` triggers per user per sliding window.
//! Over the limit the user is told once per window, not every time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; `notify` is true the first time in this window.
    Limited {
        notify: bool,
    },
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    users: HashMap<u64, UserWindow>,
}

#[derive(Debug, Default)]
struct UserWindow {
    recent: VecDeque<Instant>,
    notified: bool,
}

impl RateLimiter {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            users: HashMap::new(),
        }
    }

    pub fn check(&mut self, user: u64, now: Instant) -> Decision {
        if self.users.len() > 10_000 {
            // Forget idle users so the map stays bounded.
            let window = self.window;
            self.users.retain(|_, user| {
                user.recent
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let entry = self.users.entry(user).or_default();
        while entry
            .recent
            .front()
            .is_some_and(|first| now.duration_since(*first) >= self.window)
        {
            entry.recent.pop_front();
        }
        if entry.recent.len() < self.limit {
            entry.recent.push_back(now);
            entry.notified = false;
            return Decision::Allowed;
        }
        let notify = !entry.notified;
        entry.notified = true;
        Decision::Limited { notify }
    }
}

/// The notice a rate-limited user gets (once per window).
pub fn notice(limit: usize) -> String {
    format!("⏳ You've asked {limit} questions in the last minute — please wait a bit before the next one.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_trigger_in_a_minute_is_limited_and_notified_once() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(5, Duration::from_secs(60));
        for i in 0..5 {
            assert_eq!(
                limiter.check(1, start + Duration::from_secs(i)),
                Decision::Allowed
            );
        }
        assert_eq!(
            limiter.check(1, start + Duration::from_secs(6)),
            Decision::Limited { notify: true }
        );
        assert_eq!(
            limiter.check(1, start + Duration::from_secs(7)),
            Decision::Limited { notify: false }
        );
        assert_eq!(
            limiter.check(2, start + Duration::from_secs(7)),
            Decision::Allowed,
            "other users are not affected"
        );
        assert_eq!(
            limiter.check(1, start + Duration::from_secs(61)),
            Decision::Allowed,
            "the window slides"
        );
    }
}
