//! The processor's Prometheus metrics (served on `/metrics` with rtfm-core's shared ones).

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};

// Each `expect` below can only fail on a duplicate metric name, which these single statics rule out.

/// Records handled by ingestion, by outcome: upserted, deleted, skipped (empty), dead_lettered.
pub static INGESTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "rtfm_messages_ingested_total",
        "discord-messages records applied to the index",
        &["outcome"]
    )
    .expect("metric registers once")
});
/// Records of the batch ingestion is holding (0 when nothing is held): the index or the
/// embedding provider is unavailable and the batch waits, uncommitted, to be retried.
pub static HELD_RECORDS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "rtfm_ingest_held_records",
        "Records held by ingestion while a dependency is unavailable, by dependency",
        &["waiting_for"]
    )
    .expect("metric registers once")
});
pub static BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_ingest_batches_total",
        "Ingestion batches made durable"
    )
    .expect("metric registers once")
});
pub static EMBED_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!("rtfm_embed_seconds", "Time to embed one batch")
        .expect("metric registers once")
});
/// Bulk embedding batches a question stopped so it could go first (each was run again).
pub static EMBED_PREEMPTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_embed_preempted_batches_total",
        "Bulk embedding batches stopped for a question and run again after it"
    )
    .expect("metric registers once")
});
/// Bulk embedding batches that held back for a question being answered.
pub static EMBED_HELD: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_embed_held_batches_total",
        "Bulk embedding batches that held back (at most 100 ms each) while a question was answered"
    )
    .expect("metric registers once")
});
pub static UPSERT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "rtfm_chroma_write_seconds",
        "Time to upsert/delete one batch in Chroma"
    )
    .expect("metric registers once")
});
/// Answers produced, by provider (gemini, openai, extractive, none).
pub static QUERIES_ANSWERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "rtfm_queries_answered_total",
        "bot-queries answered",
        &["provider"]
    )
    .expect("metric registers once")
});
pub static DEGRADED_ANSWERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "rtfm_degraded_answers_total",
        "Answers that fell back because the model or the index failed"
    )
    .expect("metric registers once")
});
pub static MODEL_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "rtfm_model_call_seconds",
        "Latency of one model API call",
        &["provider"]
    )
    .expect("metric registers once")
});
/// 0 closed, 1 half-open, 2 open.
pub static BREAKER_STATE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "rtfm_model_breaker_state",
        "Model circuit breaker: 0 closed, 1 half-open, 2 open"
    )
    .expect("metric registers once")
});
pub static CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "rtfm_consumer_lag",
        "Records behind the end of the assigned partitions",
        &["group"]
    )
    .expect("metric registers once")
});
pub static MODEL_ACCEPTED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "rtfm_model_accepted",
        "1 when the answering model's API accepted the start-up check (key and model), 0 when it refused it"
    )
    .expect("metric registers once")
});
pub static CHROMA_UP: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "rtfm_chroma_up",
        "1 when the last Chroma call or heartbeat succeeded"
    )
    .expect("metric registers once")
});
/// Partitions this instance owns, by consumer group.
pub static ASSIGNED_PARTITIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "rtfm_assigned_partitions",
        "Partitions assigned to this instance",
        &["group"]
    )
    .expect("metric registers once")
});
/// Time from a query's arrival to its committed response (retrieval, model, transaction).
/// Where a query's time goes: `embed` (the question), `search` (nearest messages), `expand`
/// (their conversations), `answer` (retrieval + model + rendering), `commit` (the response
/// transaction: produce, offsets, commit).
pub static QUERY_STAGE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "rtfm_query_stage_seconds",
        "Time of one stage of answering a query",
        &["stage"],
        vec![
            0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
            5.0, 10.0, 30.0
        ]
    )
    .expect("metric registers once")
});
pub static QUERY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "rtfm_query_seconds",
        "Time to answer one query and commit the response transaction",
        vec![
            0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0,
            30.0
        ]
    )
    .expect("metric registers once")
});
/// Messages the community's choices kept out, by reason (member, channel, guild): not
/// indexed, or not quoted.
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "rtfm_messages_refused_total",
        "Messages kept out of the index by the community's choices, by reason",
        &["reason"]
    )
    .expect("metric registers once")
});
/// Messages removed from the index by the community's choices, by what was chosen (member,
/// channel, guild).
pub static REMOVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "rtfm_messages_removed_total",
        "Messages removed from the index by forget-me, channel exclusion or guild removal",
        &["subject"]
    )
    .expect("metric registers once")
});
