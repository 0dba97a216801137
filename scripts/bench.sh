#!/usr/bin/env bash
# The side-by-side benchmark: RTFM against the Python reference it replaces, in one invocation,
# on one Kafka broker, one Chroma server and the same messages of the public corpus, with the
# build users run (release, as the Dockerfile builds). Prints one table of rates, ratios,
# latencies and peak RSS.
#
#   scripts/bench.sh            # rates on 2 000 messages, memory while ingesting 10 000
#   scripts/bench.sh --quick    # 1 000 messages, no 10 000 run
#
# Installs the Python reference (PyTorch, sentence-transformers, confluent-kafka, the Chroma
# client; about 3 GB, once) into its own venv, $RTFM_CACHE_DIR/bench-venv. Starts its own broker
# and Chroma server (in .rtfm/bench-run) and stops them again. Wants an idle machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

QUICK=""
MESSAGES=2000
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; MESSAGES=1000; fi
PYTHON_PACKAGES="torch==2.15.0 sentence-transformers==6.2.0 transformers==5.24.0 confluent-kafka==2.16.1 chromadb-client==1.5.9"
BENCH_VENV="$RTFM_CACHE_DIR/bench-venv"
export RTFM_RUN_DIR="$ROOT/.rtfm/bench-run"
mkdir -p "$RTFM_RUN_DIR"
export RTFM_TEST_LOG_DIR="$RTFM_RUN_DIR/logs"
mkdir -p "$RTFM_TEST_LOG_DIR"

cleanup() {
  "$ROOT/scripts/chroma.sh" stop >/dev/null 2>&1 || true
  "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

require_tools cargo python3 curl java mvn
"$ROOT/scripts/model.sh"
if [ ! -x "$BENCH_VENV/bin/python" ] \
  || ! "$BENCH_VENV/bin/python" -c 'import sentence_transformers, confluent_kafka, chromadb' 2>/dev/null; then
  log "installing the Python reference into $BENCH_VENV ($PYTHON_PACKAGES)"
  python3 -m venv "$BENCH_VENV"
  # shellcheck disable=SC2086
  "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check $PYTHON_PACKAGES \
    || die "pip install of the Python reference failed (is PyPI reachable?)"
fi
"$ROOT/scripts/kafka.sh" start
"$ROOT/scripts/chroma.sh" start
set -a
source "$RTFM_RUN_DIR/kafka.env"
source "$RTFM_RUN_DIR/chroma.env"
set +a
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtfm/models/all-MiniLM-L6-v2}"

# The bench profile is the release profile (Cargo.toml); building the binaries with it lets the
# benchmark and the services share one set of compiled dependencies in target/release.
log "building the release binaries"
cargo build --profile bench --locked --workspace --bins
cargo bench --locked -p rtfm-tests --bench pipeline --no-run

log "running the Python reference on $MESSAGES messages"
"$BENCH_VENV/bin/python" "$ROOT/scripts/bench_python.py" \
  --bootstrap "$KAFKA_BOOTSTRAP_SERVERS" --chroma-url "$CHROMA_URL" \
  --corpus "$ROOT/eval/ubuntu-irc-qa/corpus.jsonl" --model-dir "$EMBEDDING_MODEL_DIR" \
  --messages "$MESSAGES" --out "$RTFM_RUN_DIR/python.json" 2>"$RTFM_RUN_DIR/python.log" \
  || { tail -20 "$RTFM_RUN_DIR/python.log" >&2; die "the Python reference failed (log: $RTFM_RUN_DIR/python.log)"; }

log "running RTFM on the same messages"
cargo bench --locked -p rtfm-tests --bench pipeline -- \
  $QUICK --messages "$MESSAGES" --reference "$RTFM_RUN_DIR/python.json"
