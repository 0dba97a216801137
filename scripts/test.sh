#!/usr/bin/env bash
# The full test suite, on a fresh machine or a warm one:
#   formatting and lints, then a real Kafka broker and a real Chroma server on free loopback
#   ports, `cargo test --workspace` against them, and both services stopped again (also on
#   failure or Ctrl-C).
#
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p processor`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Services for tests get their own run dir so a running `scripts/up.sh` is left alone.
export RTFM_RUN_DIR="$ROOT/.rtfm/test-run"
mkdir -p "$RTFM_RUN_DIR"

cleanup() {
  "$ROOT/scripts/chroma.sh" stop || true
  "$ROOT/scripts/kafka.sh" stop || true
}
trap cleanup EXIT

log "checking formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

"$ROOT/scripts/model.sh"
"$ROOT/scripts/kafka.sh" start
"$ROOT/scripts/chroma.sh" start
set -a
source "$RTFM_RUN_DIR/kafka.env"
source "$RTFM_RUN_DIR/chroma.env"
set +a
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtfm/models/all-MiniLM-L6-v2}"
export RUST_BACKTRACE=1
log "running the tests against $KAFKA_BOOTSTRAP_SERVERS and $CHROMA_URL"
cargo test --workspace --locked "$@"

# Retrieval quality on the public dev set, through the real ingestion and retrieval code.
# Metrics are printed; only a floor far below the measured recall@10 (0.82) is asserted.
EVAL_DIR="$(cd "$ROOT/.." && pwd)/shared/eval/ubuntu-irc-qa"
if [ -f "$EVAL_DIR/corpus.jsonl" ]; then
  log "evaluating retrieval on $EVAL_DIR (dev split + 30 off-topic questions)"
  cargo build --locked --bin processor
  cat "$EVAL_DIR/queries-dev.jsonl" "$ROOT/eval/offtopic-queries.jsonl" > "$RTFM_RUN_DIR/eval-queries.jsonl"
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/processor" eval \
    --corpus "$EVAL_DIR/corpus.jsonl" --queries "$RTFM_RUN_DIR/eval-queries.jsonl" \
    --out "$RTFM_RUN_DIR/eval-run.jsonl" --min-recall-at-10 0.4
  python3 "$EVAL_DIR/evaluate.py" --queries "$EVAL_DIR/queries-dev.jsonl" --run "$RTFM_RUN_DIR/eval-run.jsonl"
else
  die "the evaluation set is missing at $EVAL_DIR (shared/ beside the checkout)"
fi
