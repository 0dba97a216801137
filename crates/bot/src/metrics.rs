//! The bot's Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{register_int_counter, register_int_counter_vec, IntCounter, IntCounterVec};

// Each `expect` can only fail on a duplicate metric name, which these single statics rule out.

/// Records published, by topic kind (message, edit, delete, query).
pub static PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "rtfm_bot_published_total",
        "Records the bot published",
        &["kind"]
    )
    .expect("metric registers once")
});
pub static REPLIES_POSTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_bot_replies_posted_total",
        "Answers posted (one per query)"
    )
    .expect("metric registers once")
});
pub static DUPLICATES_SUPPRESSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_bot_duplicates_suppressed_total",
        "Responses delivered twice and posted once"
    )
    .expect("metric registers once")
});
pub static RATE_LIMITED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_bot_rate_limited_total",
        "Triggers refused by the per-user rate limit"
    )
    .expect("metric registers once")
});
pub static GATEWAY_RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_bot_gateway_reconnects_total",
        "Gateway sessions resumed or re-identified"
    )
    .expect("metric registers once")
});
pub static POST_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_bot_post_failures_total",
        "Failed attempts to post to Discord (retried)"
    )
    .expect("metric registers once")
});
