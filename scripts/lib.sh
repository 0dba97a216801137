# Shared shell functions for the scripts in this folder. Sourced, never run.
# Layout: caches that survive a fresh clone live under $RTFM_CACHE_DIR (default ~/.cache/rtfm);
# the state of locally running services lives under $RTFM_RUN_DIR (default <repo>/.rtfm/run).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RTFM_CACHE_DIR="${RTFM_CACHE_DIR:-$HOME/.cache/rtfm}"
RTFM_RUN_DIR="${RTFM_RUN_DIR:-$ROOT/.rtfm/run}"
mkdir -p "$RTFM_CACHE_DIR" "$RTFM_RUN_DIR"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_is_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stops the process whose pid is in file $1: SIGTERM, then SIGKILL after $2 seconds.
stop_pidfile() {
  local pidfile="$1" grace="${2:-30}" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then log "pid $pid ignored SIGTERM for ${grace}s; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

# Waits up to 120 s until the command "$4"… succeeds, while the process in pidfile $1 lives;
# $2 is its log (its tail is shown on failure), $3 what it is ("the broker", "chroma").
wait_ready() {
  local pidfile="$1" logfile="$2" what="$3"; shift 3
  for _ in $(seq 1 600); do
    pid_alive "$(cat "$pidfile")" || { tail -30 "$logfile" >&2; die "$what exited during start-up"; }
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -30 "$logfile" >&2
  die "$what did not answer within 120 s ($*)"
}

# Fails naming every missing command of "$@" and how to get it.
require_tools() {
  local missing=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local hints=""
  for tool in "${missing[@]}"; do
    case "$tool" in
      cargo) hints+=" cargo: https://rustup.rs;" ;;
      java) hints+=" java: a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless);" ;;
      mvn) hints+=" mvn: Apache Maven (Debian: apt-get install maven);" ;;
      python3) hints+=" python3: Python 3.11+ (Debian: apt-get install python3 python3-venv);" ;;
      curl) hints+=" curl: (Debian: apt-get install curl);" ;;
      *) hints+=" $tool;" ;;
    esac
  done
  die "missing: ${missing[*]} —$hints"
}
