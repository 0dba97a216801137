//! Question → committed answer under ingest load, and the embedder measured alone.

use super::*;

/// A processor answering with an instant fake model, on fresh topics and a fresh collection
/// holding 1 000 indexed messages of channel 20.
pub(super) async fn answering_processor(
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
pub(super) struct AnswerLoad {
    pub(super) latencies: Vec<f64>,
    pub(super) breakdown: Vec<String>,
    pub(super) mean: f64,
    pub(super) processor_mean: f64,
    pub(super) produced: u64,
    pub(super) ingested: usize,
    pub(super) seconds: f64,
    pub(super) label: &'static str,
}

impl AnswerLoad {
    pub(super) fn rows(&self, table: &mut Table, questions: usize) {
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
pub(super) async fn answer_under_load(
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
pub(super) const WARM_UP_QUESTIONS: usize = 5;

/// Question `i` of the question → answer phase, in the channel of the indexed history.
pub(super) fn bench_question(i: u64) -> BotQuery {
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
pub(super) fn measure_embedding(
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
