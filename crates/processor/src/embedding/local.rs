//! all-MiniLM-L6-v2 in-process on ONNX Runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{EmbedError, MAX_TOKENS};

/// What the local embedder reads from its directory (`scripts/model.sh` puts them there).
pub const MODEL_FILE: &str = "model.onnx";
/// The same graph with int8 weights (`scripts/quantize_int8.py`), for [`Precision::Int8`].
pub const INT8_MODEL_FILE: &str = "model-int8.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The ONNX Runtime shared library, unless `ORT_DYLIB_PATH` names another.
pub const RUNTIME_FILE: &str = "libonnxruntime.so";

/// Which of the two graphs the local embedder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// float32 weights: the same vectors as sentence-transformers (cosine ≥ 0.999).
    #[default]
    Fp32,
    /// int8 weights (dynamic quantization): faster and smaller, vectors slightly off (the
    /// README's Benchmarks section has the measured speed and retrieval cost). A collection
    /// should be indexed and queried with one precision.
    Int8,
}

impl Precision {
    pub fn file(self) -> &'static str {
        match self {
            Precision::Fp32 => MODEL_FILE,
            Precision::Int8 => INT8_MODEL_FILE,
        }
    }
}

/// How bulk texts are grouped into forward passes: texts sorted by token count, each batch as
/// many as fit in `max_tokens` padded tokens (sentences × its longest), at most
/// `max_sentences`, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_sentences: usize,
    pub max_tokens: usize,
}

impl Batching {
    /// Measured on the public corpus, release build, 2 cores (README, "Benchmarks"): a token
    /// budget beats a fixed sentence count (chat lines are mostly short, a few are very long:
    /// short ones batch wide, long ones alone). 384 was the best budget for ingest's calls of
    /// 128 messages (256–384 within noise) and within noise of the best (384–768) for 2 000
    /// texts at once; a batch then takes a few tens of milliseconds with float32 here.
    pub const DEFAULT: Batching = Batching {
        max_sentences: 64,
        max_tokens: 384,
    };

    /// Exactly `sentences` per batch, whatever their length.
    pub fn sentences(sentences: usize) -> Self {
        Batching {
            max_sentences: sentences,
            max_tokens: usize::MAX,
        }
    }

    /// Consecutive runs of `order` (indices of `lengths`, sorted by length) forming batches.
    fn split<'a>(&self, order: &'a [usize], lengths: &[usize]) -> Vec<&'a [usize]> {
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len()
                && end - start < self.max_sentences
                && (end + 1 - start).saturating_mul(lengths[order[end]]) <= self.max_tokens
            {
                end += 1;
            }
            batches.push(&order[start..end]);
            start = end;
        }
        batches
    }
}

/// The default model directory: `$XDG_CACHE_HOME/rtfm/models/all-MiniLM-L6-v2`, else
/// `~/.cache/rtfm/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("rtfm/models/all-MiniLM-L6-v2")
}

/// Where the ONNX Runtime library is: `ORT_DYLIB_PATH` if set, else next to the model.
pub fn runtime_library(model_dir: &Path) -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| model_dir.join(RUNTIME_FILE))
}

/// Loads the ONNX Runtime library once per process (it cannot be swapped later) and returns
/// its environment; a failed attempt is not remembered, so a corrected path works next time.
fn runtime(library: &Path) -> Result<Environment, String> {
    static LOADED: Mutex<Option<Environment>> = Mutex::new(None);
    if !library.is_file() {
        return Err(format!("{} does not exist", library.display()));
    }
    let mut loaded = LOADED
        .lock()
        .map_err(|_| "runtime loader poisoned".to_string())?;
    if let Some(environment) = loaded.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(|err| err.to_string())?
        .with_name("rtfm")
        .build()
        .map_err(|err| err.to_string())?;
    *loaded = Some(environment.clone());
    Ok(environment)
}

/// The longest bulk work holds back for a question being answered: a batch runs once it has
/// waited this long, or once the question has been answered for this long. A question is
/// answered in tens of milliseconds without a model; one that waits seconds for a model's
/// reply holds ingestion back for its first 100 ms only, and under a continuous stream of
/// questions ingestion still runs one batch (a few tens of milliseconds, see
/// [`Batching::DEFAULT`]) per ~140 ms.
pub const MAX_BULK_HOLD: Duration = Duration::from_millis(100);

/// Held while a question is answered ([`LocalModel::answering`]).
#[must_use = "bulk batches hold back only while the guard lives"]
pub struct Answering<'a>(Option<&'a AtomicUsize>);

impl Answering<'_> {
    /// A guard that holds nothing back (an embedder without bulk batches to hold).
    pub(super) fn none() -> Self {
        Answering(None)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.0 {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn inference(err: ort::Error) -> EmbedError {
    EmbedError::Inference(err.to_string())
}

/// all-MiniLM-L6-v2 on the CPU, through ONNX Runtime.
pub struct LocalModel {
    session: Mutex<Session>,
    /// Questions waiting for the session: bulk embedding lets them go first.
    questions_waiting: AtomicUsize,
    /// Questions being answered, from receipt to committed response ([`LocalModel::answering`]):
    /// bulk batches hold back for them, for at most [`MAX_BULK_HOLD`] per batch and per
    /// question.
    answering: AtomicUsize,
    /// When the latest of them was received, in microseconds since `created`.
    answering_since_micros: AtomicU64,
    created: Instant,
    /// How many bulk batches held back for a question being answered.
    held_batches: AtomicU64,
    /// The run options of bulk batches. A question sets their terminate flag: ONNX Runtime
    /// stops the running batch at its next node and the question goes next; the batch is run
    /// again after it.
    bulk_run: RunOptions,
    /// How many bulk batches were actually stopped (and run again).
    preempted_batches: AtomicU64,
    /// Unpadded, truncated at [`MAX_TOKENS`].
    tokenizer: Tokenizer,
    pad_id: i64,
    batching: Batching,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("batching", &self.batching)
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Loads the model from `dir` (`precision`'s graph, tokenizer.json; the runtime library
    /// from `ORT_DYLIB_PATH` or `dir/libonnxruntime.so`). `threads` is ONNX Runtime's intra-op
    /// thread count (0: one per core).
    pub fn load(
        dir: &Path,
        precision: Precision,
        batching: Batching,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let bad = |reason: String| EmbedError::ModelFiles {
            path: dir.to_path_buf(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(dir.join(TOKENIZER_FILE))
            .map_err(|err| bad(format!("{TOKENIZER_FILE}: {err}")))?;
        // The packaged tokenizer.json pads and truncates to a fixed 128; sentence-transformers
        // pads to the longest sentence of the batch and truncates at 256. Texts are tokenized
        // unpadded, sorted by token count and padded per batch ([`LocalModel::embed_batch`]).
        let pad_id = tokenizer.get_padding().map_or(0, |padding| padding.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|err| bad(format!("{TOKENIZER_FILE}: {err}")))?;
        let model_file = precision.file();
        let model_path = dir.join(model_file);
        if !model_path.is_file() {
            return Err(bad(format!(
                "{model_file} is missing (scripts/model.sh writes it)"
            )));
        }
        let library = runtime_library(dir);
        let environment = runtime(&library).map_err(|reason| {
            bad(format!(
                "ONNX Runtime library {}: {reason} (set ORT_DYLIB_PATH)",
                library.display()
            ))
        })?;
        let session = Session::builder(&environment)
            .and_then(|builder| {
                builder
                    .with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .and_then(|builder| builder.with_intra_threads(threads).map_err(Into::into))
            // Idle threads sleep instead of spinning: the processor shares its cores with
            // Kafka's client, Chroma's requests and, on one machine, the servers themselves.
            .and_then(|builder| builder.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut builder| builder.commit_from_file(&model_path))
            .map_err(|err| bad(format!("{model_file}: {err}")))?;
        let bulk_run = RunOptions::new().map_err(|err| bad(format!("run options: {err}")))?;
        Ok(Self {
            session: Mutex::new(session),
            questions_waiting: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            answering_since_micros: AtomicU64::new(0),
            created: Instant::now(),
            held_batches: AtomicU64::new(0),
            bulk_run,
            preempted_batches: AtomicU64::new(0),
            tokenizer,
            pad_id: i64::from(pad_id),
            batching: Batching {
                max_sentences: batching.max_sentences.max(1),
                max_tokens: batching.max_tokens,
            },
        })
    }

    /// Embeds `texts` (any number), returning vectors in input order. Bulk work (ingestion):
    /// a question never waits for it (see [`LocalModel::embed_question`]).
    ///
    /// All texts are tokenized first and sorted by token count, then cut into batches by
    /// [`Batching`]: a batch pads little, and short lines go many to a pass (README,
    /// "Benchmarks": sorting by characters into batches of 8 was 20–35 % slower).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self.tokenize(texts.iter().map(String::as_str).collect())?;
        let lengths: Vec<usize> = encodings.iter().map(Encoding::len).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| lengths[index]);
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in self.batching.split(&order, &lengths) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&index| &encodings[index]).collect();
            let embedded = self.embed_bulk_batch(&batch)?;
            for (&index, vector) in chunk.iter().zip(embedded) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }

    /// One bulk batch. A question may stop its first run; the second runs to the end, so
    /// bulk work progresses however many questions come (a question then waits for at most
    /// that one batch).
    ///
    /// Any failure of the first run is taken for a stop and the batch run again, not
    /// preemptible: a batch that really fails fails the same way the second time and that
    /// error is returned. (Telling a stop from a failure by counting stop requests raced: a
    /// request made while the batch waited for questions left the flag set after the count
    /// was read, and the stopped batch was reported as failed — its messages dead-lettered.)
    fn embed_bulk_batch(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.let_questions_go_first();
        // Cleared after the wait: a question that comes after this sets it again and stops
        // the run below at its next node.
        self.bulk_run.unterminate().map_err(inference)?;
        match self.embed_batch(batch, Some(&self.bulk_run)) {
            Ok(vectors) => Ok(vectors),
            Err(_) => {
                self.let_questions_go_first();
                let again = self.embed_batch(batch, None)?;
                self.preempted_batches.fetch_add(1, Ordering::Relaxed);
                crate::metrics::EMBED_PREEMPTED.inc();
                Ok(again)
            }
        }
    }

    /// Waits while a question waits for the session, and while one is being answered (for at
    /// most [`MAX_BULK_HOLD`] of the batch's wait and of the question's answer: ingestion
    /// progresses under any question rate, and a question waiting for a model's reply does
    /// not hold it back).
    fn let_questions_go_first(&self) {
        let started = Instant::now();
        let mut held = false;
        loop {
            let waiting = self.questions_waiting.load(Ordering::SeqCst) > 0;
            let answering = self.answering.load(Ordering::SeqCst) > 0
                && started.elapsed() < MAX_BULK_HOLD
                && self.latest_question_age() < MAX_BULK_HOLD;
            if !waiting && !answering {
                break;
            }
            if answering && !held {
                held = true;
                self.held_batches.fetch_add(1, Ordering::Relaxed);
                crate::metrics::EMBED_HELD.inc();
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Marks a question as being answered until the guard is dropped: bulk batches do not
    /// start meanwhile (for at most [`MAX_BULK_HOLD`] per batch and per question), so the
    /// question's search and its response's transaction get the cores that Chroma and the
    /// broker need. Its
    /// embedding stops a running batch anyway ([`LocalModel::embed_question`]); this keeps
    /// the re-run and the next batches out of the rest of the answer.
    pub fn answering(&self) -> Answering<'_> {
        let now = u64::try_from(self.created.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.answering_since_micros.store(now, Ordering::SeqCst);
        self.answering.fetch_add(1, Ordering::SeqCst);
        Answering(Some(&self.answering))
    }

    /// How long ago the latest question being answered was received.
    fn latest_question_age(&self) -> Duration {
        let since = self.answering_since_micros.load(Ordering::SeqCst);
        self.created
            .elapsed()
            .saturating_sub(Duration::from_micros(since))
    }

    /// How many bulk batches held back for a question being answered.
    pub fn held_batches(&self) -> u64 {
        self.held_batches.load(Ordering::Relaxed)
    }

    /// How many bulk batches questions have stopped (each was run again).
    pub fn preempted_batches(&self) -> u64 {
        self.preempted_batches.load(Ordering::Relaxed)
    }

    /// Embeds one question ahead of any bulk work: a bulk batch already running is stopped
    /// (and run again after), so the question usually waits for one graph node, not for a
    /// batch.
    pub fn embed_question(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.questions_waiting.fetch_add(1, Ordering::SeqCst);
        let result = self
            .bulk_run
            .terminate()
            .map_err(inference)
            .and_then(|()| self.tokenize(vec![text]))
            .and_then(|encodings| self.embed_batch(&encodings.iter().collect::<Vec<_>>(), None));
        self.questions_waiting.fetch_sub(1, Ordering::SeqCst);
        result?
            .pop()
            .ok_or_else(|| EmbedError::Inference("no vector returned".to_string()))
    }

    /// Token ids of `texts`, with the special tokens, truncated, unpadded.
    fn tokenize(&self, texts: Vec<&str>) -> Result<Vec<Encoding>, EmbedError> {
        self.tokenizer
            .encode_batch(texts, true)
            .map_err(|err| EmbedError::Inference(err.to_string()))
    }

    /// Runs the graph on `batch`, padded to its longest, with `run_options` if given (bulk
    /// batches).
    fn embed_batch(
        &self,
        batch: &[&Encoding],
        run_options: Option<&RunOptions>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let length = batch
            .iter()
            .map(|encoding| encoding.len())
            .max()
            .unwrap_or(0);
        let rows = batch.len();
        let mut ids = Vec::with_capacity(rows * length);
        let mut mask = Vec::with_capacity(rows * length);
        for encoding in batch {
            let padding = length - encoding.len();
            ids.extend(encoding.get_ids().iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(self.pad_id, padding));
            mask.extend(
                encoding
                    .get_attention_mask()
                    .iter()
                    .map(|&bit| i64::from(bit)),
            );
            mask.extend(std::iter::repeat_n(0, padding));
        }
        let ids = Tensor::from_array(([rows, length], ids)).map_err(inference)?;
        let mask = Tensor::from_array(([rows, length], mask)).map_err(inference)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| EmbedError::Inference("embedding session poisoned".to_string()))?;
        let inputs = ort::inputs!["input_ids" => ids, "attention_mask" => mask];
        let outputs = match run_options {
            Some(options) => session.run_with_options(inputs, options),
            None => session.run(inputs),
        }
        .map_err(inference)?;
        let (shape, values) = outputs["sentence_embedding"]
            .try_extract_tensor::<f32>()
            .map_err(inference)?;
        let width = shape.get(1).copied().unwrap_or_default();
        if shape.len() != 2 || shape[0] as usize != rows || width <= 0 {
            return Err(EmbedError::Inference(format!(
                "model returned shape {shape:?} for {rows} sentences"
            )));
        }
        Ok(values.chunks(width as usize).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests;
