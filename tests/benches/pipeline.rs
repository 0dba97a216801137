//! RTFM benchmarks: prints a table. Needs the real Kafka and Chroma (`scripts/kafka.sh start`,
//! `scripts/chroma.sh start`) and the built binaries (`cargo build --bins`).
//!
//!   cargo bench -p rtfm-tests --bench pipeline --profile dev            # full: 10 000 messages, 200 triggers
//!   cargo bench -p rtfm-tests --bench pipeline --profile dev -- --quick  # 1 000 messages, 50 triggers
//!
//! Measures: embed-only rate; ingest rate Kafka → Chroma with offsets committed (one and two
//! processors); answer latency with an instant fake model; trigger → reply latency through the
//! bot and a fake Discord at 5 triggers/s; peak RSS of both services.

use std::time::{Duration, Instant};

use futures::future::join_all;
use processor::embedding::{default_model_dir, LocalModel};
use processor::store::{MessageStore, StoreConfig};
use rtfm_core::kafka::{KafkaConfig, Producer};
use rtfm_core::{BotQuery, DiscordMessage, MessageEvent};
use serde_json::{json, Map};
use test_support::fake_discord::{self, FakeDiscord};
use test_support::fake_model::{Behaviour, FakeModel};
use test_support::process::{spawn_bot, spawn_processor, ServiceProcess};
use test_support::{http_get, metric_value, services};

const WORDS: &[&str] = &[
    "deploy", "key", "rotate", "the", "bot", "config", "staging", "database", "how", "do", "I",
    "restart", "error", "build", "failed", "with", "docker", "kafka", "chroma", "token", "where",
    "is", "log", "version", "upgrade", "python", "rust", "cargo", "test", "works", "for", "me",
    "thanks", "try", "again", "please", "channel", "guild",
];

/// Chat-like text of varying length (2–60 words), deterministic per index.
fn sentence(i: u64) -> String {
    let mut state = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let length = 2 + next() % 59;
    (0..length)
        .map(|_| WORDS[next() % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn message(i: u64, channel: u64) -> DiscordMessage {
    // A lively channel: a message every 20 s.
    let at = chrono::Utc::now() - chrono::Duration::seconds(20 * (20_000 - i as i64));
    DiscordMessage {
        message_id: (50_000_000 + i).to_string(),
        content: sentence(i),
        username: format!("user{}", i % 50),
        user_id: (1_000 + i % 50).to_string(),
        channel_id: channel.to_string(),
        timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        metadata: Map::from_iter([("channel_name".to_string(), json!("bench"))]),
        guild_id: Some("77".into()),
        event: MessageEvent::Create,
        reply_to_message_id: None,
        extra: Map::new(),
        ..Default::default()
    }
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

struct Row(String, String);

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
async fn ingest(kafka: &KafkaConfig, chroma: &str, processors: usize, count: u64) -> (f64, f64) {
    let collection = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let running = start_processors(kafka, chroma, &collection, processors, &[]).await;
    let producer = Producer::new(kafka, "bench").expect("producer");
    let messages: Vec<DiscordMessage> = (0..count).map(|i| message(i, 100 + i % 12)).collect();
    let started = Instant::now();
    for chunk in messages.chunks(1_000) {
        for result in join_all(chunk.iter().map(|m| producer.send(m))).await {
            result.expect("acked");
        }
    }
    let store = MessageStore::connect(&StoreConfig::new(chroma, &collection))
        .await
        .expect("chroma");
    loop {
        if store.count().await.unwrap_or(0) as u64 >= count {
            let mut lag = 0.0;
            for (_, http) in &running {
                let text = http_get(&format!("http://{http}/metrics"))
                    .await
                    .map(|(_, body)| body)
                    .unwrap_or_default();
                lag += metric_value(
                    &text,
                    r#"rtfm_consumer_lag{group="discord-message-processor"}"#,
                )
                .unwrap_or(1.0);
            }
            if lag == 0.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let (messages, triggers) = if quick {
        (1_000u64, 50usize)
    } else {
        (10_000u64, 200usize)
    };
    let mut rows: Vec<Row> = Vec::new();

    // 1. Embed-only, same texts and batch size as ingestion.
    let model = LocalModel::load(
        &std::env::var_os("EMBEDDING_MODEL_DIR")
            .map(Into::into)
            .unwrap_or_else(default_model_dir),
        processor::embedding::DEFAULT_BATCH_SIZE,
        0,
    )
    .expect("model (run scripts/model.sh)");
    let texts: Vec<String> = (0..messages.min(3_000)).map(sentence).collect();
    let started = Instant::now();
    for chunk in texts.chunks(128) {
        model.embed(chunk).expect("embeds");
    }
    let embed_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    drop(model);
    rows.push(Row(
        format!("embed-only ({} chat messages, batches of 128)", texts.len()),
        format!("{embed_rate:.0} msg/s"),
    ));
    eprintln!("embed-only: {embed_rate:.0}/s");

    let chroma = services::chroma_url();

    // 2. Ingest with one processor, then two in one group.
    let kafka = services::kafka_with_topics().await;
    let (rate_one, rss_ingest) = ingest(&kafka, &chroma, 1, messages).await;
    eprintln!("ingest x1: {rate_one:.0}/s");
    rows.push(Row(
        format!("ingest Kafka → Chroma, offsets committed ({messages} msgs, 1 processor)"),
        format!(
            "{rate_one:.0} msg/s ({:.0} % of embed-only)",
            100.0 * rate_one / embed_rate
        ),
    ));
    let kafka_two = services::kafka_with_topics().await;
    let (rate_two, _) = ingest(&kafka_two, &chroma, 2, messages).await;
    eprintln!("ingest x2: {rate_two:.0}/s");
    rows.push(Row(
        format!("ingest, 2 processors in one group ({messages} msgs)"),
        format!("{rate_two:.0} msg/s (speed-up ×{:.2})", rate_two / rate_one),
    ));
    rows.push(Row(
        "processor peak RSS during ingest".into(),
        format!("{rss_ingest:.0} MiB"),
    ));

    // 3. Answers with an instant fake model, and trigger → reply through the bot.
    let kafka = services::kafka_with_topics().await;
    let model_api = FakeModel::start().await;
    model_api.always(Behaviour::Answer("Use the documented command [1].".into()));
    let base = model_api.gemini_base_url();
    let collection = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut processors = start_processors(
        &kafka,
        &chroma,
        &collection,
        1,
        &[
            ("GEMINI_API_KEY", "bench-key"),
            ("GEMINI_BASE_URL", base.as_str()),
        ],
    )
    .await;
    let producer = Producer::new(&kafka, "bench").expect("producer");
    let history: Vec<DiscordMessage> = (0..500).map(|i| message(i, 20)).collect();
    for result in join_all(history.iter().map(|m| producer.send(m))).await {
        result.expect("acked");
    }
    let store = MessageStore::connect(&StoreConfig::new(&chroma, &collection))
        .await
        .expect("chroma");
    while store.count().await.unwrap_or(0) < 500 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
    for i in 0..triggers + 5 {
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
    while fake.posts().len() < triggers + 5 && Instant::now() < deadline {
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
    let metrics = http_get(&format!("http://{}/metrics", processors[0].1))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let answered = metric_value(&metrics, "rtfm_query_seconds_count").unwrap_or(0.0);
    let processor_mean_ms =
        metric_value(&metrics, "rtfm_query_seconds_sum").unwrap_or(0.0) / answered.max(1.0) * 1e3;
    rows.push(Row(
        format!(
            "trigger → reply via fake Discord, instant model ({} of {triggers} at 5/s)",
            latencies.len()
        ),
        format!(
            "p50 {:.0} ms · p95 {:.0} ms · p99 {:.0} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99)
        ),
    ));
    rows.push(Row(
        "  of which in the processor (embed + Chroma + model + transaction), mean".into(),
        format!("{processor_mean_ms:.0} ms"),
    ));
    rows.push(Row(
        "  of which Kafka hops + bot (p50 minus processor mean)".into(),
        format!("{:.0} ms", percentile(&latencies, 0.5) - processor_mean_ms),
    ));

    // 4. Answer latency seen on Kafka alone: query in → committed response out.
    let responses_config = kafka.clone();
    let queries: Vec<BotQuery> = (0..triggers as u64)
        .map(|i| BotQuery {
            query_id: uuid::Uuid::new_v4().to_string(),
            original_message_id: (70_000_000 + i).to_string(),
            question: sentence(i * 13),
            username: "bench".into(),
            user_id: "1".into(),
            channel_id: "20".into(),
            timestamp: rtfm_core::schema::now_timestamp(),
            context: Map::new(),
            guild_id: Some("77".into()),
            extra: Map::new(),
        })
        .collect();
    let reader_producer = Producer::new(&responses_config, "bench").expect("producer");
    let reader: rtfm_core::kafka::Consumer<rtfm_core::BotResponse> =
        rtfm_core::kafka::Consumer::new(
            &responses_config,
            &rtfm_core::kafka::ConsumerOptions::new(
                &format!("bench-{}", uuid::Uuid::new_v4()),
                "bench",
            )
            .offset_reset(rtfm_core::kafka::OffsetReset::Earliest),
            reader_producer,
        )
        .expect("consumer");
    let shutdown = tokio_util_token();
    let mut answer_latencies = Vec::new();
    for query in &queries {
        let started = Instant::now();
        producer.send(query).await.expect("acked");
        loop {
            match tokio::time::timeout(Duration::from_secs(30), reader.recv(&shutdown)).await {
                Ok(Ok(Some(received))) if received.record.query_id == query.query_id => break,
                Ok(Ok(Some(_))) => continue,
                _ => panic!("no answer"),
            }
        }
        answer_latencies.push(started.elapsed().as_secs_f64() * 1e3);
    }
    answer_latencies.sort_by(f64::total_cmp);
    rows.push(Row(
        format!("query → committed response on Kafka, instant model ({triggers} sequential)"),
        format!(
            "p50 {:.0} ms · p99 {:.0} ms",
            percentile(&answer_latencies, 0.5),
            percentile(&answer_latencies, 0.99)
        ),
    ));
    rows.push(Row(
        "bot peak RSS".into(),
        format!("{:.0} MiB", peak_rss_mib(bot.pid())),
    ));
    rows.push(Row(
        "processor peak RSS (answering, model loaded)".into(),
        format!("{:.0} MiB", peak_rss_mib(processors[0].0.pid())),
    ));
    bot.kill_9();
    processors.clear();
    let _ = store.drop_collection().await;

    println!("\n| measurement | result |\n|---|---|");
    for Row(what, value) in rows {
        println!("| {what} | {value} |");
    }
}

fn tokio_util_token() -> tokio_util::sync::CancellationToken {
    tokio_util::sync::CancellationToken::new()
}
