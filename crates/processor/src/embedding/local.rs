//! all-MiniLM-L6-v2 in-process on ONNX Runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

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

/// Sentences per forward pass by default. Measured on 2 000 lines of the public corpus, release
/// build, 2 cores (msg/s): 4: 497, 8: 461-475, 16: 447-453, 32: 410, 64: 397. Chat lines are
/// short; larger batches pad more and fall out of cache. 8 keeps the per-call overhead low
/// for longer texts.
pub const DEFAULT_BATCH_SIZE: usize = 8;

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
/// questions ingestion still runs one batch (8 messages, ~40 ms with float32 on this machine's
/// cores) per ~140 ms, ~55 messages/s.
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
    tokenizer: Tokenizer,
    batch_size: usize,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("batch_size", &self.batch_size)
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
        batch_size: usize,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let bad = |reason: String| EmbedError::ModelFiles {
            path: dir.to_path_buf(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(dir.join(TOKENIZER_FILE))
            .map_err(|err| bad(format!("{TOKENIZER_FILE}: {err}")))?;
        // The packaged tokenizer.json pads and truncates to a fixed 128; sentence-transformers
        // pads to the longest sentence of the batch and truncates at 256.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
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
            batch_size: batch_size.max(1),
        })
    }

    /// Embeds `texts` (any number), returning vectors in input order. Bulk work (ingestion):
    /// a question never waits for it (see [`LocalModel::embed_question`]).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| texts[index].len());
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&index| texts[index].as_str()).collect();
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
    fn embed_bulk_batch(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
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
            .and_then(|()| self.embed_batch(&[text], None));
        self.questions_waiting.fetch_sub(1, Ordering::SeqCst);
        result?
            .pop()
            .ok_or_else(|| EmbedError::Inference("no vector returned".to_string()))
    }

    /// Runs the graph on `batch`, with `run_options` if given (bulk batches).
    fn embed_batch(
        &self,
        batch: &[&str],
        run_options: Option<&RunOptions>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|err| EmbedError::Inference(err.to_string()))?;
        let length = encodings
            .first()
            .map_or(0, |encoding| encoding.get_ids().len());
        let rows = encodings.len();
        let mut ids = Vec::with_capacity(rows * length);
        let mut mask = Vec::with_capacity(rows * length);
        for encoding in &encodings {
            ids.extend(encoding.get_ids().iter().map(|&id| i64::from(id)));
            mask.extend(
                encoding
                    .get_attention_mask()
                    .iter()
                    .map(|&bit| i64::from(bit)),
            );
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
