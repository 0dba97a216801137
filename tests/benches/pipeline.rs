//! RTFM benchmarks: prints one table. Needs the real Kafka and Chroma and the built binaries of
//! the same profile. `scripts/bench.sh` does all of that and runs the Python reference first, in
//! the same invocation, on the same broker, Chroma and messages (release build, as the
//! Dockerfile builds):
//!
//!   scripts/bench.sh            # rates on 2 000 messages; memory while ingesting 10 000
//!   scripts/bench.sh --quick    # 1 000 messages, no 10 000 run
//!
//! By hand: `cargo build --release --bins && cargo bench -p rtfm-tests --bench pipeline --
//! [--quick] [--messages N] [--reference python.json]`.
//!
//! Measures: embed-only rate (and per batch size); ingest rate Kafka → Chroma with offsets
//! committed (one processor, two in one group); question → committed answer with an instant
//! model at 5 questions/s while 50 messages/s are ingested; trigger → reply through the bot and
//! a fake Discord; peak RSS of both services. The messages are the public IRC corpus
//! (eval/ubuntu-irc-qa/corpus.jsonl), cycled with fresh ids past its end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use processor::embedding::{default_model_dir, Batching, LocalModel, Precision};
use processor::store::{ChromaStore, StoreConfig, VectorStore};
use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::topics::{TopicKind, GROUP_MESSAGE_PROCESSOR};
use rtfm_core::{BotQuery, DiscordMessage, MessageEvent};
use serde_json::{json, Map};
use test_support::fake_discord::{self, FakeDiscord};
use test_support::fake_model::{Behaviour, FakeModel};
use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
use test_support::{http_get, metric_value, services};

#[path = "pipeline/answering.rs"]
mod answering;
#[path = "pipeline/report.rs"]
mod report;
use answering::*;
use report::*;

/// The public corpus' message texts, in order.
fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(test_support::repo::corpus_texts)
}

/// Message `i` of the corpus (cycled).
fn sentence(i: u64) -> String {
    let texts = corpus();
    texts[i as usize % texts.len()].clone()
}

fn message(i: u64, channel: u64) -> DiscordMessage {
    // A lively channel: a message every 20 s.
    let at = chrono::Utc::now() - chrono::Duration::seconds(20 * (20_000 - i as i64));
    DiscordMessage {
        message_id: (50_000_000 + i).into(),
        content: sentence(i),
        username: format!("user{}", i % 50),
        user_id: (1_000 + i % 50).into(),
        channel_id: channel.into(),
        timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        metadata: Map::from_iter([("channel_name".to_string(), json!("bench"))]),
        guild_id: Some(77.into()),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
}

/// How many of `messages` the processor indexes (empty ones are not; a few corpus lines are).
fn indexable(messages: &[DiscordMessage]) -> usize {
    messages
        .iter()
        .filter(|message| !message.content.trim().is_empty())
        .count()
}

/// The processor's query stages: (stage, seconds summed, count) from its `/metrics`.
async fn query_stages(http: &str) -> Vec<(&'static str, f64, f64)> {
    let text = http_get(&format!("http://{http}/metrics"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let mut stages = Vec::new();
    for stage in ["embed", "search", "expand", "answer", "commit"] {
        let labels = format!("{{stage=\"{stage}\"}}");
        let sum = metric_value(&text, &format!("rtfm_query_stage_seconds_sum{labels}"));
        let count = metric_value(&text, &format!("rtfm_query_stage_seconds_count{labels}"));
        stages.push((stage, sum.unwrap_or(0.0), count.unwrap_or(0.0)));
    }
    let model_sum = metric_value(&text, "rtfm_model_call_seconds_sum{provider=\"gemini\"}");
    let model_count = metric_value(&text, "rtfm_model_call_seconds_count{provider=\"gemini\"}");
    stages.push((
        "model call",
        model_sum.unwrap_or(0.0),
        model_count.unwrap_or(0.0),
    ));
    stages
}

async fn start_processors(
    kafka: &KafkaConfig,
    chroma: &str,
    collection: &str,
    count: usize,
    extra: &[(&str, &str)],
) -> Vec<(ServiceProcess, String)> {
    let mut processors = Vec::new();
    let log_filter =
        std::env::var("RTFM_BENCH_PROCESSOR_LOG").unwrap_or_else(|_| "warn".to_string());
    for _ in 0..count {
        // Production defaults: the test helper's short linger is for fast tests.
        let mut env = vec![
            ("RUST_LOG", log_filter.as_str()),
            ("INGEST_BATCH_LINGER_MS", "200"),
            ("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
        ];
        env.extend_from_slice(extra);
        processors.push(spawn_processor(kafka, chroma, collection, &env));
    }
    for (_, http) in &processors {
        let url = format!("http://{http}/readyz");
        let started = Instant::now();
        while http_get(&url).await.map(|(status, _)| status) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "processor not ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    processors
}

/// Publishes `count` messages and waits until all are in Chroma and every offset is committed.
async fn ingest(chroma: &str, processors: usize, count: u64, extra: &[(&str, &str)]) -> (f64, f64) {
    // Fresh topics and a fresh collection for each measurement.
    let kafka = &services::kafka_with_topics().await;
    let collection = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let running = start_processors(kafka, chroma, &collection, processors, extra).await;
    let producer = Producer::new(kafka, "bench").expect("producer");
    let messages: Vec<DiscordMessage> = (0..count).map(|i| message(i, 100 + i % 12)).collect();
    let expected = indexable(&messages);
    let store = ChromaStore::connect(&StoreConfig::new(chroma, &collection))
        .await
        .expect("chroma");
    // Warm-up, as the Python reference's clock starts at its first record: one message per
    // channel (every partition), indexed before the clock starts, so group join and partition
    // assignment are not counted.
    let warm_up: Vec<DiscordMessage> = (0..12)
        .map(|i| {
            let mut warm = message(900_000 + i, 100 + i);
            warm.content = format!("warm-up message {i}");
            warm
        })
        .collect();
    for result in join_all(warm_up.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    while store.count().await.unwrap_or(0) < warm_up.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expected = expected + warm_up.len();
    let started = Instant::now();
    let mut positions = Vec::new();
    for chunk in messages.chunks(1_000) {
        for result in join_all(chunk.iter().map(|m| producer.send(m))).await {
            let delivered = result.expect("acked");
            positions.push((delivered.partition, delivered.offset));
        }
    }
    // The clock stops when every message is in Chroma and the group has committed past it,
    // as the batched Python consumer's stops after its last synchronous commit. Polled every
    // 20 ms: the processor commits each batch as soon as it is durable.
    while store.count().await.unwrap_or(0) < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while !services::group_passed(
        kafka,
        GROUP_MESSAGE_PROCESSOR,
        TopicKind::DiscordMessages,
        &positions,
    )
    .await
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let rss = running
        .iter()
        .map(|(process, _)| peak_rss_mib(process.pid()))
        .fold(0.0, f64::max);
    drop(running);
    let _ = store.drop_collection().await;
    (rate, rss)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let messages: u64 = arg_value("--messages")
        .map(|n| n.parse().expect("--messages N"))
        .unwrap_or(if quick { 1_000 } else { 2_000 });
    let questions = if quick { 50 } else { 200 };
    let python = reference(arg_value("--reference").as_deref());
    let profile = if cfg!(debug_assertions) {
        "dev (debug assertions)"
    } else {
        "release"
    };
    let mut table = Table(Vec::new());
    let model_dir: std::path::PathBuf = std::env::var_os("EMBEDDING_MODEL_DIR")
        .map(Into::into)
        .unwrap_or_else(default_model_dir);

    // 1. Embed-only: the same texts as the Python row, default batching, then a sweep.
    let texts: Vec<String> = (0..messages).map(sentence).collect();
    let default = Batching::DEFAULT;
    let embed_rate = measure_embedding(&model_dir, Precision::Fp32, default, &texts, usize::MAX);
    eprintln!("embed-only, default batching: {embed_rate:.0}/s");
    table.row(
        format!(
            "embed-only, {messages} corpus messages (batches of ≤ {} tokens, ≤ {} sentences; Python: 64 sentences)",
            default.max_tokens, default.max_sentences
        ),
        format!("{embed_rate:.1} msg/s"),
        python.embed_only,
        "msg/s",
        ratio(embed_rate, python.embed_only),
    );
    let sweep = [
        (
            "8 sentences (the previous default)",
            Batching::sentences(8),
            usize::MAX,
        ),
        (
            "≤ 192 tokens",
            Batching {
                max_tokens: 192,
                ..default
            },
            usize::MAX,
        ),
        (
            "≤ 768 tokens",
            Batching {
                max_tokens: 768,
                ..default
            },
            usize::MAX,
        ),
        ("default, in calls of 128 (ingest's batches)", default, 128),
    ];
    for (label, batching, call) in sweep {
        let rate = measure_embedding(&model_dir, Precision::Fp32, batching, &texts, call);
        eprintln!("embed-only, {label}: {rate:.0}/s");
        table.row(
            format!("  embed-only, {label}"),
            format!("{rate:.1} msg/s"),
            None,
            "",
            String::new(),
        );
    }

    // The int8 graph (EMBEDDING_PRECISION=int8), default batching.
    let int8_rate = measure_embedding(&model_dir, Precision::Int8, default, &texts, usize::MAX);
    eprintln!("embed-only, int8: {int8_rate:.0}/s");
    table.row(
        "  embed-only, EMBEDDING_PRECISION=int8",
        format!(
            "{int8_rate:.1} msg/s (×{:.2} of fp32)",
            int8_rate / embed_rate
        ),
        python.embed_only,
        "msg/s",
        ratio(int8_rate, python.embed_only),
    );

    let chroma = services::chroma_url();

    // 2. Ingest with one processor, then two in one group (one thread each: 2 cores).
    let (rate_one, _) = ingest(&chroma, 1, messages, &[]).await;
    eprintln!("ingest x1: {rate_one:.0}/s");
    table.row(
        format!("ingest Kafka → embed → Chroma, offsets committed, 1 processor ({messages} msgs)"),
        format!(
            "{rate_one:.1} msg/s ({:.0} % of embed-only)",
            100.0 * rate_one / embed_rate
        ),
        python.batched,
        "msg/s (batched)",
        python.ingest_ratios(rate_one),
    );
    let (rate_int8, _) = ingest(&chroma, 1, messages, &[("EMBEDDING_PRECISION", "int8")]).await;
    eprintln!("ingest x1 int8: {rate_int8:.0}/s");
    table.row(
        format!("  ingest, 1 processor, EMBEDDING_PRECISION=int8 ({messages} msgs)"),
        format!(
            "{rate_int8:.1} msg/s (×{:.2} of fp32)",
            rate_int8 / rate_one
        ),
        python.batched,
        "msg/s (batched)",
        python.ingest_ratios(rate_int8),
    );
    table.row(
        "  Python seed-style consumer (per-message encode + add, auto-commit)",
        "",
        python.seed_style,
        "msg/s",
        String::new(),
    );
    let (rate_two, _) = ingest(&chroma, 2, messages, &[("EMBEDDING_THREADS", "1")]).await;
    eprintln!("ingest x2: {rate_two:.0}/s");
    table.row(
        format!("ingest, 2 processors in one group on 2 cores ({messages} msgs)"),
        format!("{rate_two:.1} msg/s (×{:.2} of one)", rate_two / rate_one),
        None,
        "",
        String::new(),
    );
    if !quick {
        let (rate, rss) = ingest(&chroma, 1, 10_000, &[]).await;
        eprintln!("ingest 10k: {rate:.0}/s, {rss:.0} MiB");
        table.row(
            "processor peak RSS while ingesting 10 000 messages",
            format!("{rss:.0} MiB ({rate:.0} msg/s)"),
            python.peak_rss_mib,
            "MiB (whole reference run)",
            String::new(),
        );
    }

    // 3. Trigger → reply through the bot, and question → committed answer under ingest load.
    let (kafka, store, mut processors) = answering_processor(&chroma, &[]).await;
    let fake = FakeDiscord::start().await;
    fake.add_channel(20, Some(77), "bench");
    let (mut bot, _) = spawn_bot(
        &kafka,
        &fake.base_url(),
        "bench-token",
        &[("RATE_LIMIT_PER_MINUTE", "100000"), ("RUST_LOG", "warn")],
    );
    while fake.identifies() == 0 || fake.commands().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm-up: the first question pays for connections and caches.
    let mut sent_at = Vec::new();
    for i in 0..questions + 5 {
        let id = 60_000_000 + i as u64;
        let author = fake_discord::user(2_000 + (i % 100) as u64, "asker", false);
        let started = Instant::now();
        fake.push_message(fake_discord::message(
            id,
            20,
            Some(77),
            author,
            &format!("rtfm {}", sentence(i as u64 * 7)),
        ));
        sent_at.push((id, started));
        tokio::time::sleep(Duration::from_millis(200)).await; // 5 triggers/s
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.posts().len() < questions + 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let posts = fake.posts();
    let mut latencies: Vec<f64> = sent_at
        .iter()
        .skip(5)
        .filter_map(|(id, started)| {
            posts
                .iter()
                .find(|post| post.reply_to() == Some(*id))
                .map(|post| post.at.duration_since(*started).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    table.row(
        format!(
            "trigger → reply via bot + fake Discord, instant model ({} of {questions} at 5/s)",
            latencies.len()
        ),
        format!(
            "p50 {:.0} ms · p95 {:.0} ms · p99 {:.0} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99)
        ),
        None,
        "",
        String::new(),
    );

    answer_under_load(&kafka, &store, &processors[0].1, questions, "")
        .await
        .rows(&mut table, questions);
    table.row(
        "bot peak RSS",
        format!("{:.0} MiB", peak_rss_mib(bot.pid())),
        None,
        "",
        String::new(),
    );
    table.row(
        "processor peak RSS (answering, model loaded)",
        format!("{:.0} MiB", peak_rss_mib(processors[0].0.pid())),
        None,
        "",
        String::new(),
    );
    bot.kill_9();
    processors.clear();
    let _ = store.drop_collection().await;
    // The same with the int8 graph.
    let (kafka, store, mut processors) =
        answering_processor(&chroma, &[("EMBEDDING_PRECISION", "int8")]).await;
    answer_under_load(
        &kafka,
        &store,
        &processors[0].1,
        questions,
        ", EMBEDDING_PRECISION=int8",
    )
    .await
    .rows(&mut table, questions);
    table.row(
        "processor peak RSS (answering, EMBEDDING_PRECISION=int8)",
        format!("{:.0} MiB", peak_rss_mib(processors[0].0.pid())),
        None,
        "",
        String::new(),
    );
    processors.clear();
    let _ = store.drop_collection().await;

    println!(
        "\nRTFM {profile} build vs the Python reference, one run, this machine ({} cores)\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("| measurement | RTFM | Python reference | ratio |\n|---|---|---|---|");
    for [what, ours, theirs, ratio] in table.0 {
        println!("| {what} | {ours} | {theirs} | {ratio} |");
    }
}
