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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return f64::NAN };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|line| {
            line.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
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

/// The Python reference's results (scripts/bench_python.py), if given.
#[derive(Default)]
struct Reference {
    embed_only: Option<f64>,
    seed_style: Option<f64>,
    batched: Option<f64>,
    peak_rss_mib: Option<f64>,
}

impl Reference {
    /// An ingest rate against both Python consumers.
    fn ingest_ratios(&self, ours: f64) -> String {
        format!(
            "{} batched · {} seed-style",
            ratio(ours, self.batched),
            ratio(ours, self.seed_style)
        )
    }
}

fn reference(path: Option<&str>) -> Reference {
    let Some(path) = path else {
        return Reference::default();
    };
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"));
    let field = |name: &str| value[name].as_f64();
    Reference {
        embed_only: field("embed_only"),
        seed_style: field("seed_style"),
        batched: field("batched"),
        peak_rss_mib: field("peak_rss_mib"),
    }
}

fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or_else(
        || "—".to_string(),
        |theirs| format!("×{:.2}", ours / theirs),
    )
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1).cloned())
}

/// Rows of the table: what, RTFM, Python reference, ratio.
struct Table(Vec<[String; 4]>);

impl Table {
    fn row(
        &mut self,
        what: impl Into<String>,
        ours: impl Into<String>,
        python: Option<f64>,
        unit: &str,
        ratio: String,
    ) {
        let python = python.map_or_else(|| "—".to_string(), |value| format!("{value:.1} {unit}"));
        self.0.push([what.into(), ours.into(), python, ratio]);
    }
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

/// A processor answering with an instant fake model, on fresh topics and a fresh collection
/// holding 1 000 indexed messages of channel 20.
async fn answering_processor(
    chroma: &str,
    extra: &[(&str, &str)],
) -> (KafkaConfig, ChromaStore, Vec<(ServiceProcess, String)>) {
    let kafka = services::kafka_with_topics().await;
    let model_api = FakeModel::start().await;
    model_api.always(Behaviour::Answer("Use the documented command [1].".into()));
    let base = model_api.gemini_base_url();
    let collection = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut env = vec![
        ("GEMINI_API_KEY", "bench-key"),
        ("GEMINI_BASE_URL", base.as_str()),
    ];
    env.extend_from_slice(extra);
    let processors = start_processors(&kafka, chroma, &collection, 1, &env).await;
    let producer = Producer::new(&kafka, "bench").expect("producer");
    let history: Vec<DiscordMessage> = (0..1_000).map(|i| message(i, 20)).collect();
    for result in join_all(history.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let store = ChromaStore::connect(&StoreConfig::new(chroma, &collection))
        .await
        .expect("chroma");
    let expected = indexable(&history);
    while store.count().await.unwrap_or(0) < expected {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The fake model's server task keeps serving after `model_api` is dropped.
    (kafka, store, processors)
}

/// Question → committed answer on Kafka, as measured by [`answer_under_load`].
struct AnswerLoad {
    latencies: Vec<f64>,
    breakdown: Vec<String>,
    mean: f64,
    processor_mean: f64,
    produced: u64,
    ingested: usize,
    seconds: f64,
    label: &'static str,
}

impl AnswerLoad {
    fn rows(&self, table: &mut Table, questions: usize) {
        let label = self.label;
        table.row(
            format!(
                "question → committed answer on Kafka, instant model, {questions} at 5/s (after {WARM_UP_QUESTIONS} warm-up ones) while ingesting 50 msg/s{label} ({} sent, {} indexed in {:.0} s)",
                self.produced, self.ingested, self.seconds
            ),
            format!(
                "p50 {:.0} ms · p99 {:.0} ms",
                percentile(&self.latencies, 0.5),
                percentile(&self.latencies, 0.99)
            ),
            None,
            "",
            String::new(),
        );
        table.row(
            format!("… where it goes{label}, mean ms: in the processor (answer = embed + search + expand + model + rendering; commit = the response transaction), and the Kafka hops (produce, fetch, read_committed fetch of the answer)"),
            format!(
                "{} · Kafka hops {:.1} (of mean {:.1})",
                self.breakdown.join(" · "),
                self.mean - self.processor_mean,
                self.mean
            ),
            None,
            "",
            String::new(),
        );
    }
}

/// Asks `questions` questions at 5/s of the processor whose HTTP endpoint is `http`, while 50
/// messages/s are published, and times each until its answer is committed.
async fn answer_under_load(
    kafka: &KafkaConfig,
    store: &ChromaStore,
    http: &str,
    questions: usize,
    label: &'static str,
) -> AnswerLoad {
    let reader_producer = Producer::new(kafka, "bench").expect("producer");
    let reader: rtfm_core::kafka::Consumer<rtfm_core::BotResponse> =
        rtfm_core::kafka::Consumer::new(
            kafka,
            &rtfm_core::kafka::ConsumerOptions::new(
                &format!("bench-{}", uuid::Uuid::new_v4()),
                "bench",
            )
            .offset_reset(rtfm_core::kafka::OffsetReset::Latest),
            reader_producer,
        )
        .expect("consumer");
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Join the responses topic before the first question, so none is missed.
    let _ = tokio::time::timeout(Duration::from_secs(3), reader.recv(&shutdown)).await;
    let load = {
        let producer = Producer::new(kafka, "bench-load").expect("producer");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut i = 100_000u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20)); // 50 msg/s
            while !stop.is_cancelled() {
                tick.tick().await;
                let _ = producer.send(&message(i, 21)).await;
                i += 1;
            }
            i - 100_000
        })
    };
    // Warm-up: WARM_UP_QUESTIONS asked one at a time, each answered before the next, none
    // counted. A fresh producer's first send waits for metadata and its idempotence set-up
    // (over a second here), which would otherwise hold back, then burst, the measured ones.
    let asker_producer = Producer::new(kafka, "bench-ask").expect("producer");
    for i in 0..WARM_UP_QUESTIONS as u64 {
        let query = bench_question(1_000_000 + i);
        asker_producer.send(&query).await.expect("acked");
        loop {
            match tokio::time::timeout(Duration::from_secs(30), reader.recv(&shutdown)).await {
                Ok(Ok(Some(received))) if received.record.query_id == query.query_id => break,
                Ok(Ok(Some(_))) => {}
                _ => panic!("no answer to a warm-up question within 30 s"),
            }
        }
    }
    let ingested_before = store.count().await.unwrap_or(0);
    let stages_before = query_stages(http).await;
    let asked: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let asker = {
        let asked = std::sync::Arc::clone(&asked);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200)); // 5 questions/s
            for i in 0..questions as u64 {
                tick.tick().await;
                let query = bench_question(i);
                asked
                    .lock()
                    .expect("asked")
                    .insert(query.query_id.to_string(), Instant::now());
                asker_producer.send(&query).await.expect("acked");
            }
        })
    };
    let load_started = Instant::now();
    let mut answer_latencies = Vec::new();
    while answer_latencies.len() < questions {
        match tokio::time::timeout(Duration::from_secs(30), reader.recv(&shutdown)).await {
            Ok(Ok(Some(received))) => {
                let at = Instant::now();
                if let Some(started) = asked
                    .lock()
                    .expect("asked")
                    .remove(received.record.query_id.as_str())
                {
                    answer_latencies.push(at.duration_since(started).as_secs_f64() * 1e3);
                }
            }
            _ => panic!("no answer within 30 s"),
        }
    }
    let seconds = load_started.elapsed().as_secs_f64();
    asker.await.expect("asker");
    shutdown.cancel();
    let produced = load.await.expect("load");
    let ingested = store
        .count()
        .await
        .unwrap_or(0)
        .saturating_sub(ingested_before);
    answer_latencies.sort_by(f64::total_cmp);
    let stages_after = query_stages(http).await;
    let breakdown: Vec<String> = stages_before
        .iter()
        .zip(&stages_after)
        .map(
            |((stage, sum_before, count_before), (_, sum_after, count_after))| {
                let count = (count_after - count_before).max(1.0);
                format!("{stage} {:.1}", (sum_after - sum_before) / count * 1e3)
            },
        )
        .collect();
    let processor_mean = stages_after
        .iter()
        .zip(&stages_before)
        .filter(|((stage, ..), _)| matches!(*stage, "answer" | "commit"))
        .map(
            |((_, sum_after, count_after), (_, sum_before, count_before))| {
                (sum_after - sum_before) / (count_after - count_before).max(1.0) * 1e3
            },
        )
        .sum::<f64>();
    let mean = answer_latencies.iter().sum::<f64>() / answer_latencies.len().max(1) as f64;
    AnswerLoad {
        latencies: answer_latencies,
        breakdown,
        mean,
        processor_mean,
        produced,
        ingested,
        seconds,
        label,
    }
}

/// Questions asked and answered before the measured ones in the question → answer phase.
const WARM_UP_QUESTIONS: usize = 5;

/// Question `i` of the question → answer phase, in the channel of the indexed history.
fn bench_question(i: u64) -> BotQuery {
    BotQuery {
        query_id: rtfm_core::ids::QueryId::random(),
        original_message_id: (70_000_000 + i).into(),
        question: sentence(i * 13),
        username: "bench".into(),
        user_id: 1.into(),
        channel_id: 20.into(),
        timestamp: rtfm_core::schema::now_timestamp(),
        context: Map::new(),
        guild_id: Some(77.into()),
        visible_channel_ids: None,
        extra: Map::new(),
    }
}

/// Embed-only rate of the local model (`precision`, `batching`) on `texts`, given to it `call`
/// at a time, warm.
fn measure_embedding(
    model_dir: &std::path::Path,
    precision: Precision,
    batching: Batching,
    texts: &[String],
    call: usize,
) -> f64 {
    let model =
        LocalModel::load(model_dir, precision, batching, 0).expect("model (run scripts/model.sh)");
    model.embed(&texts[..64.min(texts.len())]).expect("warm-up");
    let started = Instant::now();
    for chunk in texts.chunks(call.max(1)) {
        model.embed(chunk).expect("embeds");
    }
    texts.len() as f64 / started.elapsed().as_secs_f64()
}
