#!/usr/bin/env bash
# The full test suite, on a fresh machine or a warm one:
#   1. formatting and lints (cargo fmt --check, clippy -D warnings);
#   2. a real Kafka broker, a real Chroma server and a real schema registry (Apicurio) on free
#      loopback ports (started while the tests compile), every test binary of the workspace
#      against them (`--no-fail-fast`: one failing binary never hides the others), the services
#      stopped again (also on failure or Ctrl-C);
#   3. retrieval quality (`processor eval`) on both corpora of eval/ubuntu-irc-qa;
#   4. a one-screen summary: failed binaries and tests, where the logs are, "N passed, N failed".
#
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p processor`); with arguments the
# retrieval evaluation is skipped. Needs: Rust (cargo), Java 17+ and Maven (Kafka), Python 3.11
# with venv (Chroma, the model), curl. Everything else is installed by the scripts.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

started_at=$(date +%s)
# Services for tests get their own run dir so a running `scripts/up.sh` is left alone.
export RTFM_RUN_DIR="$ROOT/.rtfm/test-run"
LOG_DIR="$RTFM_RUN_DIR/logs"
rm -rf "$LOG_DIR"; mkdir -p "$LOG_DIR"
# Processes started by tests (processor, bot, private brokers) keep their logs here.
export RTFM_TEST_LOG_DIR="$LOG_DIR/processes"
mkdir -p "$RTFM_TEST_LOG_DIR"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

services_pid=""
cleanup() {
  if [ -n "$services_pid" ]; then kill "$services_pid" 2>/dev/null || true; wait "$services_pid" 2>/dev/null || true; fi
  if [ -n "${eval_pid:-}" ]; then kill "$eval_pid" 2>/dev/null || true; wait "$eval_pid" 2>/dev/null || true; fi
  "$ROOT/scripts/registry.sh" stop >/dev/null 2>&1 || true
  "$ROOT/scripts/chroma.sh" stop >/dev/null 2>&1 || true
  "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

require_tools cargo python3 curl java mvn
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "python3 has no venv/ensurepip module (Debian: apt-get install python3-venv)"

log "checking formatting and lints"
cargo fmt --all --check || die "cargo fmt --check failed: run \`cargo fmt --all\`"
cargo clippy --workspace --all-targets --locked -- -D warnings || die "clippy failed (see above)"

# The services install and start while the tests compile (both are slow on a cold machine).
log "starting the model download, the seed's Kafka clients, Kafka, Chroma and a schema registry in the background (log: $LOG_DIR/services.log)"
(
  "$ROOT/scripts/model.sh" && "$ROOT/scripts/kafka.sh" start && "$ROOT/scripts/chroma.sh" start \
    || exit 1
  # Needed by a few tests only, which fail naming the script if these could not be had: a
  # registry outage must not stop the whole suite.
  "$ROOT/scripts/seed_clients.sh" || log "warning: scripts/seed_clients.sh failed (the mixed-deployment and schema tests will fail)"
  "$ROOT/scripts/registry.sh" start || log "warning: scripts/registry.sh failed (the schema-registry tests will fail)"
) >"$LOG_DIR/services.log" 2>&1 &
services_pid=$!

log "building the binaries and the tests"
cargo build --workspace --bins --locked || die "the build failed"
cargo test --workspace --locked --no-run "$@" || die "the tests do not compile"

if ! wait "$services_pid"; then
  services_pid=""
  tail -40 "$LOG_DIR/services.log" >&2
  die "the services did not start (full log: $LOG_DIR/services.log)"
fi
services_pid=""
set -a
source "$RTFM_RUN_DIR/kafka.env"
source "$RTFM_RUN_DIR/chroma.env"
set +a
# The registry's address stays in $RTFM_RUN_DIR/registry.env, where its tests read it: exported,
# every `init-topics` a test runs would register schemas.
export EMBEDDING_MODEL_DIR="${EMBEDDING_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rtfm/models/all-MiniLM-L6-v2}"
export RUST_BACKTRACE=1

# Retrieval quality on the public dev set, through the real ingestion and retrieval code, on
# the IRC-style corpus and on the same messages as Discord delivers them. Metrics are printed;
# only floors far below the measured values are asserted (a broken pipeline). It runs while
# the test binaries run (its own collection; the tests mostly wait on processes and brokers).
EVAL_DIR="$ROOT/eval/ubuntu-irc-qa"
eval_pid=""
if [ $# -eq 0 ]; then
  cat "$EVAL_DIR/queries-dev.jsonl" "$ROOT/eval/offtopic-queries.jsonl" "$ROOT/eval/paraphrased-queries.jsonl" \
    > "$RTFM_RUN_DIR/eval-queries.jsonl"
  log "evaluating retrieval on eval/ubuntu-irc-qa in the background: corpus.jsonl (IRC-style) and corpus-discord.jsonl (84 dev, 28 paraphrased, 30 off-topic questions)"
  "$TARGET_DIR/debug/processor" eval \
    --corpus "$EVAL_DIR/corpus.jsonl" --out "$RTFM_RUN_DIR/eval-run-corpus.jsonl" \
    --corpus "$EVAL_DIR/corpus-discord.jsonl" --out "$RTFM_RUN_DIR/eval-run-corpus-discord.jsonl" \
    --queries "$RTFM_RUN_DIR/eval-queries.jsonl" --min-recall-at-10 0.4 \
    >"$LOG_DIR/eval-report.md" 2>"$LOG_DIR/eval.log" &
  eval_pid=$!
fi

log "running every test binary against $KAFKA_BOOTSTRAP_SERVERS and $CHROMA_URL (output: $LOG_DIR/cargo-test.log)"
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$LOG_DIR/cargo-test.log"
tests_status=${PIPESTATUS[0]}

eval_status=0
if [ -n "$eval_pid" ]; then
  wait "$eval_pid"
  eval_exit=$?
  eval_pid=""
  if [ "$eval_exit" -eq 0 ]; then
    cat "$LOG_DIR/eval-report.md"
    for corpus in corpus corpus-discord; do
      echo "evaluate.py on $corpus.jsonl:"
      python3 "$EVAL_DIR/evaluate.py" --queries "$EVAL_DIR/queries-dev.jsonl" --run "$RTFM_RUN_DIR/eval-run-$corpus.jsonl"
    done
  else
    eval_status=1
    cat "$LOG_DIR/eval-report.md"
    tail -20 "$LOG_DIR/eval.log" >&2
    echo "processor eval: FAILED (log: $LOG_DIR/eval.log)" >> "$LOG_DIR/eval-failures.txt"
  fi
fi

python3 "$ROOT/scripts/test_summary.py" "$LOG_DIR/cargo-test.log" \
  --eval-failures "$LOG_DIR/eval-failures.txt" --logs "$LOG_DIR" \
  --kafka-log "$RTFM_RUN_DIR/kafka/kafka.log" --chroma-log "$RTFM_RUN_DIR/chroma/chroma.log" \
  --seconds $(( $(date +%s) - started_at ))
summary_status=$?
if [ "$tests_status" -ne 0 ] || [ "$eval_status" -ne 0 ] || [ "$summary_status" -ne 0 ]; then
  exit 1
fi
