//! How retrieval and indexing behave as the index grows (#29): the eval corpus's channel among
//! ever more distractor messages in other channels, measured at each size in one run.
//!
//!   cargo bench -p processor --bench scale -- [--sizes 10000,100000] [--chroma-data DIR]
//!
//! The distractors are the corpus's own messages copied into 50 other channels, each with a
//! marker that makes its text (and vector) its own, so every one is really embedded. At each
//! size: indexing rate of the distractors added, the 84 dev questions' retrieval latency
//! (p50/p99, embedding included), their recall@10 as `processor eval` scores it, this process's
//! resident memory and, with `--chroma-data`, the size of Chroma's data folder. Needs
//! CHROMA_URL (scripts/chroma.sh start) and the model (scripts/model.sh). 1 M runs on demand
//! (`--sizes 1000000`, hours on 2 cores).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use processor::embedding::{Batching, Embedder, LocalModel, Precision};
use processor::gate::Gate;
use processor::ingest::Indexer;
use processor::retrieval::{RetrievalSettings, Retriever};
use processor::store::{ChromaStore, StoreConfig, VectorStore};
use rtfm_core::{BotQuery, DiscordMessage, Record};
use serde_json::Value;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == name)?;
    args.get(at + 1).cloned()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn folder_mib(path: &std::path::Path) -> f64 {
    fn walk(path: &std::path::Path) -> u64 {
        match std::fs::read_dir(path) {
            Ok(entries) => entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum(),
            Err(_) => 0,
        }
    }
    walk(path) as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let chroma_data = arg("--chroma-data").map(std::path::PathBuf::from);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval/ubuntu-irc-qa");
    let corpus: Vec<DiscordMessage> = std::fs::read_to_string(root.join("corpus.jsonl"))
        .expect("the eval corpus")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| DiscordMessage::decode(line.as_bytes()).expect("a corpus record"))
        .collect();
    let queries: Vec<Value> = std::fs::read_to_string(root.join("queries-dev.jsonl"))
        .expect("the dev questions")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a question"))
        .collect();
    let chroma = std::env::var("CHROMA_URL").expect("CHROMA_URL (scripts/chroma.sh start)");
    let dir = processor::embedding::default_model_dir();
    let dir = std::env::var_os("EMBEDDING_MODEL_DIR").map_or(dir, std::path::PathBuf::from);
    let model = LocalModel::load(&dir, Precision::Fp32, Batching::DEFAULT, 0)
        .expect("the model (scripts/model.sh)");
    let embedder = Embedder::Local(Arc::new(model));
    let collection = format!("scale_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let store: Arc<dyn VectorStore> = Arc::new(
        ChromaStore::connect(&StoreConfig::new(&chroma, &collection))
            .await
            .expect("Chroma"),
    );
    let indexer = Indexer {
        store: Arc::clone(&store),
        embedder: embedder.clone(),
        gate: Gate::open(),
    };
    let retriever = Retriever {
        store: Arc::clone(&store),
        embedder,
        settings: RetrievalSettings::default(),
        gate: Gate::open(),
    };
    for chunk in corpus.chunks(128) {
        let refs: Vec<&DiscordMessage> = chunk.iter().collect();
        indexer.upsert(&refs).await.expect("index the corpus");
    }
    println!(
        "corpus: {} messages in its channel; distractors: its messages copied into 50 other channels",
        corpus.len()
    );
    println!("| messages | indexing msg/s (added) | question p50 ms | p99 ms | recall@10 | bench RSS MiB | Chroma data MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut indexed = corpus.len();
    let mut copy = 0u64;
    for size in sizes {
        let started = Instant::now();
        let added = size.saturating_sub(indexed);
        let mut batch = Vec::with_capacity(128);
        while indexed < size {
            let original = &corpus[(copy as usize) % corpus.len()];
            let mut message = original.clone();
            message.message_id = (9_000_000_000 + copy).into();
            message.channel_id = (800_000_000_000_000_000 + copy % 50).into();
            message.content = format!("{} #{copy}", original.content);
            batch.push(message);
            copy += 1;
            indexed += 1;
            if batch.len() == 128 || indexed >= size {
                let refs: Vec<&DiscordMessage> = batch.iter().collect();
                indexer.upsert(&refs).await.expect("index distractors");
                batch.clear();
            }
        }
        let rate = added as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let mut latencies = Vec::new();
        let mut recall_sum = 0.0;
        for query in &queries {
            let relevant: HashSet<&str> = query["relevant_message_ids"]
                .as_array()
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let source: HashSet<&str> = query["source_message_ids"]
                .as_array()
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let asked = BotQuery {
                query_id: query["query_id"]
                    .as_str()
                    .unwrap_or("q")
                    .parse()
                    .expect("a query id"),
                original_message_id: 1.into(),
                question: query["question"].as_str().unwrap_or_default().into(),
                channel_id: query["channel_id"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .expect("a channel id"),
                ..Default::default()
            };
            let started = Instant::now();
            let retrieved = retriever.retrieve(&asked).await.expect("retrieve");
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let top: Vec<String> = retrieved
                .ranked()
                .into_iter()
                .map(|message| message.message_id.to_string())
                .filter(|id| !source.contains(id.as_str()))
                .take(10)
                .collect();
            if !relevant.is_empty() {
                let found = top
                    .iter()
                    .filter(|id| relevant.contains(id.as_str()))
                    .count();
                recall_sum += found as f64 / relevant.len() as f64;
            }
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {indexed} | {} | {:.1} | {:.1} | {:.3} | {:.0} | {} |",
            if added > 0 {
                format!("{rate:.0}")
            } else {
                "—".into()
            },
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            recall_sum / queries.len() as f64,
            rss_mib(),
            chroma_data
                .as_deref()
                .map_or("—".to_string(), |dir| format!("{:.0}", folder_mib(dir))),
        );
    }
    if let Ok(store) = ChromaStore::connect(&StoreConfig::new(&chroma, &collection)).await {
        let _ = store.drop_collection().await;
    }
}
