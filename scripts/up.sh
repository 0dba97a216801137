#!/usr/bin/env bash
# Brings the whole system up on this machine: Kafka (127.0.0.1:29092), Chroma (127.0.0.1:8000),
# the topics, the processor in the background and the bot in the foreground — in console mode
# when DISCORD_TOKEN is not set, so you can chat with RTFM in this terminal.
# Ctrl-C (or end of input) stops the bot, the processor, Chroma and Kafka.
#
# KAFKA_PORT / CHROMA_PORT pick other ports; UP_KEEP_SERVICES=1 leaves Kafka and Chroma running.
# The processor's and the bot's /healthz /readyz /metrics listen on PROCESSOR_HTTP_ADDR
# (default: HTTP_ADDR from .env, else 127.0.0.1:8081) and BOT_HTTP_ADDR (default 127.0.0.1:8080).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if [ -f .env ]; then set -a; source .env; set +a; fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
require_tools cargo curl

# One HTTP_ADDR (e.g. from .env) must not give both services the same port.
PROCESSOR_HTTP_ADDR="${PROCESSOR_HTTP_ADDR:-${HTTP_ADDR:-127.0.0.1:8081}}"
BOT_HTTP_ADDR="${BOT_HTTP_ADDR:-127.0.0.1:8080}"
if [ "$PROCESSOR_HTTP_ADDR" = "$BOT_HTTP_ADDR" ]; then
  die "the processor and the bot would both listen on $BOT_HTTP_ADDR (HTTP_ADDR in .env?); set PROCESSOR_HTTP_ADDR and BOT_HTTP_ADDR to different addresses"
fi

processor_pid=""
cleanup() {
  if [ -n "$processor_pid" ] && pid_alive "$processor_pid"; then
    kill -TERM "$processor_pid" 2>/dev/null || true
    wait "$processor_pid" 2>/dev/null || true
  fi
  if [ "${UP_KEEP_SERVICES:-0}" != 1 ]; then
    "$ROOT/scripts/chroma.sh" stop || true
    "$ROOT/scripts/kafka.sh" stop || true
  fi
}
trap cleanup EXIT

log "building the binaries (first time: several minutes)"
cargo build --locked --bin bot --bin processor --bin init-topics >&2
"$ROOT/scripts/model.sh"
KAFKA_PORT="${KAFKA_PORT:-29092}" "$ROOT/scripts/kafka.sh" start
CHROMA_PORT="${CHROMA_PORT:-8000}" "$ROOT/scripts/chroma.sh" start
set -a
source "$RTFM_RUN_DIR/kafka.env"
source "$RTFM_RUN_DIR/chroma.env"
set +a

"$TARGET_DIR/debug/init-topics" --action create
log "starting the processor (log: $RTFM_RUN_DIR/processor.log, http: $PROCESSOR_HTTP_ADDR)"
# The model's weights in transparent huge pages (as the Dockerfile sets; README, "Benchmarks").
GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}" HTTP_ADDR="$PROCESSOR_HTTP_ADDR" "$TARGET_DIR/debug/processor" >>"$RTFM_RUN_DIR/processor.log" 2>&1 &
processor_pid=$!
ready=""
for _ in $(seq 1 600); do
  if curl -fs "http://$PROCESSOR_HTTP_ADDR/readyz" >/dev/null 2>&1; then ready=1; break; fi
  pid_alive "$processor_pid" || { tail -20 "$RTFM_RUN_DIR/processor.log" >&2; die "the processor exited (log: $RTFM_RUN_DIR/processor.log)"; }
  sleep 0.5
done
if [ -z "$ready" ]; then
  tail -20 "$RTFM_RUN_DIR/processor.log" >&2
  curl -s "http://$PROCESSOR_HTTP_ADDR/readyz" >&2 || true
  die "the processor did not become ready on http://$PROCESSOR_HTTP_ADDR/readyz within 300 s (log: $RTFM_RUN_DIR/processor.log)"
fi
log "processor ready; starting the bot ($([ -n "${DISCORD_TOKEN:-}" ] && echo "Discord gateway" || echo "console mode: no DISCORD_TOKEN"), http: $BOT_HTTP_ADDR)"
if [ -n "${DISCORD_TOKEN:-}" ]; then
  HTTP_ADDR="$BOT_HTTP_ADDR" "$TARGET_DIR/debug/bot" 2>>"$RTFM_RUN_DIR/bot.log"
else
  # Console mode keeps the terminal a chat: the bot writes its logs to this file itself (and
  # says where), and only a failure reaches the terminal.
  CONSOLE_LOG_FILE="${CONSOLE_LOG_FILE:-$RTFM_RUN_DIR/bot.log}" HTTP_ADDR="$BOT_HTTP_ADDR" "$TARGET_DIR/debug/bot"
fi
