//! `processor eval`: measures retrieval on a public chat corpus through the real path.
//!
//! Records are decoded with the `rtfm-core` schema, embedded and upserted into a fresh Chroma
//! collection by the ingestion code ([`processor::ingest`]), and each question is answered by the
//! retrieval code ([`processor::retrieval`], same scope, threshold and neighbour expansion). The
//! ranked message ids go to a run file in the format of `shared/eval/ubuntu-irc-qa/evaluate.py`,
//! and the same metrics are printed: recall@{1,5,10}, MRR@10, nDCG@10, thread_success@10, plus
//! throughput and abstention ("found nothing") rates for answerable and off-topic questions.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rtfm_core::ids::{ChannelId, MessageId, QueryId};
use rtfm_core::{BotQuery, DiscordMessage, Record};
use serde::Deserialize;
use serde_json::{json, Map};

use processor::ingest::{self, Indexer};
use processor::retrieval::{Retrieved, Retriever};
use processor::store::ChromaStore;

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Corpus: one `discord-messages` record per line. Repeat to evaluate several corpora in
    /// one run (texts they share are embedded once).
    #[arg(long, required = true)]
    pub corpus: Vec<PathBuf>,
    /// Questions: `query_id, question, channel_id, relevant_message_ids, source_message_ids,
    /// thread_message_ids` per line. Questions without relevant ids count as off-topic.
    #[arg(long)]
    pub queries: PathBuf,
    /// Where to write the run (`{"query_id", "ranked_message_ids"}` per line); one per
    /// `--corpus`, in the same order.
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
    /// Keep the evaluation collection instead of deleting it afterwards.
    #[arg(long)]
    pub keep_collection: bool,
    /// Exit non-zero if recall@10 is below this (a floor that catches a broken pipeline).
    #[arg(long)]
    pub min_recall_at_10: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EvalQuery {
    pub query_id: QueryId,
    pub question: String,
    pub channel_id: ChannelId,
    #[serde(default)]
    pub relevant_message_ids: Vec<MessageId>,
    #[serde(default)]
    pub source_message_ids: Vec<MessageId>,
    #[serde(default)]
    pub thread_message_ids: Vec<MessageId>,
    /// `paraphrase`: an answerable question asked in other words than the corpus' own (scored
    /// apart, so the dev metrics stay comparable across runs).
    #[serde(default)]
    pub split: String,
}

impl EvalQuery {
    fn is_paraphrase(&self) -> bool {
        self.split == "paraphrase"
    }
}

/// Averages over the answerable questions (as `evaluate.py` computes them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub success_at_10: f64,
    pub mrr_at_10: f64,
    pub ndcg_at_10: f64,
    pub thread_success_at_10: f64,
    pub count: usize,
}

/// Scores one ranking like `evaluate.py`: the question's own messages are dropped first.
pub fn score(queries: &[(EvalQuery, Vec<MessageId>)]) -> Metrics {
    let mut metrics = Metrics::default();
    for (query, ranked) in queries {
        if query.relevant_message_ids.is_empty() {
            continue;
        }
        let own: HashSet<&MessageId> = query.source_message_ids.iter().collect();
        let ranked: Vec<&MessageId> = ranked.iter().filter(|id| !own.contains(id)).collect();
        let relevant: HashSet<&MessageId> = query.relevant_message_ids.iter().collect();
        let thread: HashSet<&MessageId> = query
            .thread_message_ids
            .iter()
            .chain(&query.relevant_message_ids)
            .collect();
        let hits_at = |k: usize| {
            ranked
                .iter()
                .take(k)
                .filter(|id| relevant.contains(*id))
                .count() as f64
        };
        let total = relevant.len() as f64;
        metrics.recall_at_1 += hits_at(1) / total;
        metrics.recall_at_5 += hits_at(5) / total;
        metrics.recall_at_10 += hits_at(10) / total;
        metrics.success_at_10 += f64::from(u8::from(hits_at(10) > 0.0));
        metrics.mrr_at_10 += ranked
            .iter()
            .take(10)
            .position(|id| relevant.contains(*id))
            .map_or(0.0, |index| 1.0 / (index as f64 + 1.0));
        let dcg: f64 = ranked
            .iter()
            .take(10)
            .enumerate()
            .filter(|(_, id)| relevant.contains(*id))
            .map(|(index, _)| 1.0 / (index as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..relevant.len().min(10))
            .map(|index| 1.0 / (index as f64 + 2.0).log2())
            .sum();
        metrics.ndcg_at_10 += dcg / ideal;
        metrics.thread_success_at_10 += f64::from(u8::from(
            ranked.iter().take(10).any(|id| thread.contains(*id)),
        ));
        metrics.count += 1;
    }
    if metrics.count > 0 {
        let n = metrics.count as f64;
        for value in [
            &mut metrics.recall_at_1,
            &mut metrics.recall_at_5,
            &mut metrics.recall_at_10,
            &mut metrics.success_at_10,
            &mut metrics.mrr_at_10,
            &mut metrics.ndcg_at_10,
            &mut metrics.thread_success_at_10,
        ] {
            *value /= n;
        }
    }
    metrics
}

/// The ranking retrieval implies: groups best first; inside a group the hit, then the replies
/// after it (where answers are), then the messages before it.
/// How much of what an answer quotes belongs to the question's conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quoting {
    /// Mean over answerable questions with at least one quote of: quoted messages in the
    /// question's conversation (`source` ∪ `thread` ∪ `relevant` ids) / quoted messages.
    pub precision: f64,
    pub mean_shown: f64,
    pub questions: usize,
}

pub fn quoted_precision(
    results: &[(EvalQuery, Vec<MessageId>)],
    shown: &[(Vec<MessageId>, f32)],
) -> Quoting {
    let mut quoting = Quoting::default();
    let mut total_shown = 0usize;
    for ((query, _), (quoted, _)) in results.iter().zip(shown) {
        if query.relevant_message_ids.is_empty() || quoted.is_empty() {
            continue;
        }
        let conversation: HashSet<&MessageId> = query
            .relevant_message_ids
            .iter()
            .chain(&query.thread_message_ids)
            .chain(&query.source_message_ids)
            .collect();
        let inside = quoted.iter().filter(|id| conversation.contains(id)).count();
        quoting.precision += inside as f64 / quoted.len() as f64;
        total_shown += quoted.len();
        quoting.questions += 1;
    }
    if quoting.questions > 0 {
        quoting.precision /= quoting.questions as f64;
        quoting.mean_shown = total_shown as f64 / quoting.questions as f64;
    }
    quoting
}

pub fn ranked_ids(retrieved: &Retrieved) -> Vec<MessageId> {
    retrieved
        .ranked()
        .into_iter()
        .map(|message| message.message_id)
        .collect()
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs the evaluation of every corpus and prints a report for each. Returns the metrics of
/// the last one.
pub async fn run(config: &processor::Config, args: &EvalArgs) -> anyhow::Result<Metrics> {
    anyhow::ensure!(
        args.corpus.len() == args.out.len(),
        "give one --out per --corpus ({} corpora, {} outputs)",
        args.corpus.len(),
        args.out.len()
    );
    let embedder = processor::build_embedder(
        &config.embedding,
        &processor::hosted_fallback(&config.model),
    )
    .await?;
    let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
    let mut last = Metrics::default();
    for (corpus, out) in args.corpus.iter().zip(&args.out) {
        println!("\n### {}\n", corpus.display());
        last = run_corpus(config, args, corpus, out, &embedder, &mut cache).await?;
    }
    Ok(last)
}

async fn run_corpus(
    config: &processor::Config,
    args: &EvalArgs,
    corpus: &std::path::Path,
    out_path: &std::path::Path,
    embedder: &processor::embedding::Embedder,
    cache: &mut HashMap<String, Vec<f32>>,
) -> anyhow::Result<Metrics> {
    let corpus_text = std::fs::read_to_string(corpus)
        .with_context(|| format!("while reading {}", corpus.display()))?;
    let mut messages = Vec::new();
    for (line_number, line) in corpus_text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let message = DiscordMessage::decode(line.as_bytes())
            .with_context(|| format!("{} line {}", corpus.display(), line_number + 1))?;
        messages.push(message);
    }
    let queries_text = std::fs::read_to_string(&args.queries)
        .with_context(|| format!("while reading {}", args.queries.display()))?;
    let queries: Vec<EvalQuery> = queries_text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("while parsing {}", args.queries.display()))?;

    let mut store_config = config.store.clone();
    store_config.chroma_collection = format!(
        "rtfm_eval_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let store = Arc::new(
        ChromaStore::connect(&store_config)
            .await
            .context("while connecting to Chroma (CHROMA_URL)")?,
    );
    let indexer = Indexer {
        store: store.clone(),
        embedder: embedder.clone(),
        gate: processor::gate::Gate::open(),
    };
    let mut embedded_now = 0usize;

    let started = Instant::now();
    let bar = progress(messages.len() as u64, "messages indexed");
    for chunk in messages.chunks(config.ingest.batch_size.max(1)) {
        let refs: Vec<&DiscordMessage> = chunk.iter().collect();
        let plan = ingest::plan(&refs);
        let upserts: Vec<&DiscordMessage> = plan.upserts.iter().map(|&index| refs[index]).collect();
        // Texts another corpus of this run already embedded are not embedded again.
        let missing: Vec<&DiscordMessage> = upserts
            .iter()
            .copied()
            .filter(|message| !cache.contains_key(&message.content))
            .collect();
        let vectors = indexer.embed(&missing).await?;
        embedded_now += missing.len();
        for (message, vector) in missing.iter().zip(vectors) {
            cache.insert(message.content.clone(), vector);
        }
        let vectors: Vec<Vec<f32>> = upserts
            .iter()
            .map(|message| cache.get(&message.content).cloned().unwrap_or_default())
            .collect();
        indexer.write(&upserts, &vectors).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let index_rate = messages.len() as f64 / started.elapsed().as_secs_f64();

    let retriever = Retriever {
        store: store.clone(),
        embedder: embedder.clone(),
        settings: config.retrieval.clone(),
        gate: processor::gate::Gate::open(),
    };
    let started = Instant::now();
    let bar = progress(queries.len() as u64, "questions");
    let mut results = Vec::with_capacity(queries.len());
    // Per question: the ids the extractive answer quotes, and the best hit's similarity.
    let mut shown: Vec<(Vec<MessageId>, f32)> = Vec::with_capacity(queries.len());
    let mut out = std::fs::File::create(out_path)
        .with_context(|| format!("while creating {}", out_path.display()))?;
    for query in &queries {
        let bot_query = BotQuery {
            query_id: query.query_id.clone(),
            // The corpus holds the earlier occurrence of the question (`source_message_ids`);
            // the trigger itself is a new message, not indexed. The scorer drops the source.
            original_message_id: 1.into(),
            question: query.question.clone(),
            username: "eval".into(),
            user_id: 1.into(),
            channel_id: query.channel_id,
            timestamp: rtfm_core::schema::now_timestamp(),
            context: Map::new(),
            guild_id: None,
            visible_channel_ids: None,
            extra: Map::new(),
        };
        let retrieved = retriever.retrieve(&bot_query).await?;
        let ranked = ranked_ids(&retrieved);
        let quoted = processor::prompt::render_extractive(&retrieved, "").cited_ids;
        shown.push((quoted, retrieved.best_similarity()));
        writeln!(
            out,
            "{}",
            json!({"query_id": query.query_id, "ranked_message_ids": ranked})
        )?;
        results.push((query.clone(), ranked));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let query_rate = queries.len() as f64 / started.elapsed().as_secs_f64();

    // Paraphrased questions are reported on their own; everything else as before.
    let (paraphrased, results): (Vec<_>, Vec<_>) = results
        .into_iter()
        .zip(shown)
        .partition(|((query, _), _)| query.is_paraphrase());
    let (results, shown): (Vec<_>, Vec<_>) = results.into_iter().unzip();
    let (paraphrased, paraphrased_shown): (Vec<_>, Vec<_>) = paraphrased.into_iter().unzip();
    let metrics = score(&results);
    let abstained = |answerable: bool| {
        let group: Vec<_> = results
            .iter()
            .filter(|(query, _)| query.relevant_message_ids.is_empty() != answerable)
            .collect();
        let empty = group.iter().filter(|(_, ranked)| ranked.is_empty()).count();
        (empty, group.len())
    };
    let (real_empty, real_total) = abstained(true);
    let (off_empty, off_total) = abstained(false);
    println!("| metric | value |\n|---|---|");
    println!("| questions scored | {} |", metrics.count);
    println!("| recall@1 | {:.3} |", metrics.recall_at_1);
    println!("| recall@5 | {:.3} |", metrics.recall_at_5);
    println!("| recall@10 | {:.3} |", metrics.recall_at_10);
    println!("| success@10 | {:.3} |", metrics.success_at_10);
    println!("| MRR@10 | {:.3} |", metrics.mrr_at_10);
    println!("| nDCG@10 | {:.3} |", metrics.ndcg_at_10);
    println!(
        "| thread_success@10 | {:.3} |",
        metrics.thread_success_at_10
    );
    println!(
        "| indexing | {index_rate:.0} messages/s ({} messages, {embedded_now} embedded, the rest shared with an earlier corpus) |",
        messages.len()
    );
    println!("| querying | {query_rate:.1} questions/s |");
    println!("| \"found nothing\" for answerable questions | {real_empty}/{real_total} |");
    if off_total > 0 {
        println!("| \"found nothing\" for off-topic questions | {off_empty}/{off_total} |");
    }
    let quoting = quoted_precision(&results, &shown);
    println!(
        "| quoted-message precision (answerable, extractive) | {:.3} ({} questions quoted) |",
        quoting.precision, quoting.questions
    );
    println!(
        "| messages quoted per answer (mean) | {:.2} |",
        quoting.mean_shown
    );
    if !paraphrased.is_empty() {
        let para = score(&paraphrased);
        let empty = paraphrased
            .iter()
            .filter(|(_, ranked)| ranked.is_empty())
            .count();
        println!(
            "| paraphrased questions ({}): recall@10 · nDCG@10 · \"found nothing\" | {:.3} · {:.3} · {empty}/{} |",
            paraphrased.len(),
            para.recall_at_10,
            para.ndcg_at_10,
            paraphrased.len()
        );
    }
    println!("\n| similarity floor | \"found nothing\" answerable | \"found nothing\" paraphrased | \"found nothing\" off-topic |\n|---|---|---|---|");
    for floor in [0.3f32, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7] {
        let below = |answerable: bool| {
            results
                .iter()
                .zip(&shown)
                .filter(|((query, _), _)| query.relevant_message_ids.is_empty() != answerable)
                .filter(|(_, (_, best))| *best < floor)
                .count()
        };
        let paraphrased_below = paraphrased_shown
            .iter()
            .filter(|(_, best)| *best < floor)
            .count();
        println!(
            "| {floor:.2} | {}/{real_total} | {paraphrased_below}/{} | {}/{off_total} |",
            below(true),
            paraphrased.len(),
            below(false)
        );
    }
    if !args.keep_collection {
        let _ = store.drop_collection().await;
    }
    if let Some(floor) = args.min_recall_at_10 {
        anyhow::ensure!(
            metrics.recall_at_10 >= floor,
            "recall@10 {:.3} is below the floor {floor}",
            metrics.recall_at_10
        );
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests;
