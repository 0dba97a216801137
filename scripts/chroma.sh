#!/usr/bin/env bash
# A real Chroma server on 127.0.0.1 from `pip install chromadb` in a cached virtualenv.
#
#   scripts/chroma.sh start     install (cached), start, wait for /api/v2/heartbeat
#   scripts/chroma.sh stop      SIGTERM to its own pid
#   scripts/chroma.sh restart   stop + start on the same port and data (fault tests)
#   scripts/chroma.sh status
#
# CHROMA_PORT picks the port (default: a free one; `scripts/up.sh` asks for 8000).
# The URL is written to $RTFM_RUN_DIR/chroma.env as CHROMA_URL=http://127.0.0.1:PORT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CHROMA_VERSION="1.5.9"
VENV="${RTFM_VENV:-$RTFM_CACHE_DIR/venv}"
STATE="$RTFM_RUN_DIR/chroma"
PIDFILE="$STATE/chroma.pid"
ENVFILE="$RTFM_RUN_DIR/chroma.env"

install() {
  if [ -x "$VENV/bin/chroma" ] && "$VENV/bin/python" -c "import chromadb, sys; sys.exit(chromadb.__version__ != '$CHROMA_VERSION')" 2>/dev/null; then
    return
  fi
  require_tools python3 curl
  python3 -c 'import venv, ensurepip' 2>/dev/null \
    || die "python3 cannot create virtualenvs (Debian: apt-get install python3-venv)"
  log "installing chromadb==$CHROMA_VERSION into $VENV (about a minute, once per machine)"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  "$VENV/bin/pip" install -q --disable-pip-version-check "chromadb==$CHROMA_VERSION" >&2 \
    || die "pip install chromadb==$CHROMA_VERSION failed (is PyPI reachable?)"
}

start() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    log "already running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"; return
  fi
  install
  require_tools curl
  local port reuse="${1:-}"
  if [ "$reuse" = reuse ] && [ -f "$ENVFILE" ]; then
    port="$(sed -n 's/^CHROMA_URL=http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$ENVFILE")"
  else
    rm -rf "$STATE"
    port="${CHROMA_PORT:-$(free_port)}"
    port_is_free "$port" || die "port $port is taken; set CHROMA_PORT to a free port"
  fi
  mkdir -p "$STATE/data"
  log "starting Chroma $CHROMA_VERSION on 127.0.0.1:$port (log: $STATE/chroma.log)"
  # Chroma's telemetry would try the internet; this machine has none and we want none.
  ANONYMIZED_TELEMETRY=False setsid "$VENV/bin/chroma" run --path "$STATE/data" --host 127.0.0.1 --port "$port" \
    >>"$STATE/chroma.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  echo "CHROMA_URL=http://127.0.0.1:$port" > "$ENVFILE"
  wait_ready "$PIDFILE" "$STATE/chroma.log" "chroma" curl -fsS "http://127.0.0.1:$port/api/v2/heartbeat"
  log "ready: CHROMA_URL=http://127.0.0.1:$port"
}

stop() { stop_pidfile "$PIDFILE" 20; log "stopped"; }

status() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    echo "chroma: running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"
  else
    echo "chroma: not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop_pidfile "$PIDFILE" 20; start reuse ;;
  status) status ;;
  install) install ;;
  *) echo "usage: $0 start|stop|restart|status|install" >&2; exit 2 ;;
esac
