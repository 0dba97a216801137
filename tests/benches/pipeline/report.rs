//! The bench's table, its Python reference and the measures it reads from `/proc`.

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(super) fn peak_rss_mib(pid: Option<u32>) -> f64 {
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

/// The Python reference's results (scripts/bench_python.py), if given.
#[derive(Default)]
pub(super) struct Reference {
    pub(super) embed_only: Option<f64>,
    pub(super) seed_style: Option<f64>,
    pub(super) batched: Option<f64>,
    pub(super) peak_rss_mib: Option<f64>,
}

impl Reference {
    /// An ingest rate against both Python consumers.
    pub(super) fn ingest_ratios(&self, ours: f64) -> String {
        format!(
            "{} batched · {} seed-style",
            ratio(ours, self.batched),
            ratio(ours, self.seed_style)
        )
    }
}

pub(super) fn reference(path: Option<&str>) -> Reference {
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

pub(super) fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or_else(
        || "—".to_string(),
        |theirs| format!("×{:.2}", ours / theirs),
    )
}

pub(super) fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1).cloned())
}

/// Rows of the table: what, RTFM, Python reference, ratio.
pub(super) struct Table(pub(super) Vec<[String; 4]>);

impl Table {
    pub(super) fn row(
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
