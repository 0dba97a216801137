#!/usr/bin/env bash
# A real schema registry on 127.0.0.1: Apicurio Registry 3.0.9 (in-memory storage), whose
# Confluent-compatible API (/apis/ccompat/v7) is what `init-topics` registers the topics'
# JSON Schemas with. From Maven Central (io.apicurio:apicurio-registry-app:3.0.9, the
# `all` tar.gz assembly, ~110 MB, cached in ~/.m2); runs on Java 17 (3.3.x needs Java 21).
#
#   scripts/registry.sh start     install (cached), start, wait for /subjects
#   scripts/registry.sh stop      SIGTERM to its own pid
#   scripts/registry.sh status
#
# REGISTRY_PORT picks the port (default: a free one). The URL is written to
# $RTFM_RUN_DIR/registry.env as SCHEMA_REGISTRY_URL=http://127.0.0.1:PORT/apis/ccompat/v7.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VERSION="3.0.9"
APP_DIR="$RTFM_CACHE_DIR/apicurio-registry-$VERSION"
JAR="$APP_DIR/apicurio-registry-app-$VERSION-runner.jar"
STATE="$RTFM_RUN_DIR/registry"
PIDFILE="$STATE/registry.pid"
ENVFILE="$RTFM_RUN_DIR/registry.env"

install() {
  [ -f "$APP_DIR/.complete" ] && return
  require_tools mvn java
  local repo="${MAVEN_LOCAL_REPO:-$HOME/.m2/repository}" tarball
  tarball="$repo/io/apicurio/apicurio-registry-app/$VERSION/apicurio-registry-app-$VERSION-all.tar.gz"
  if [ ! -f "$tarball" ]; then
    log "resolving Apicurio Registry $VERSION from Maven Central (~110 MB, once per machine)"
    mvn -q -B dependency:get -Dtransitive=false -Dmaven.repo.local="$repo" \
        -Dartifact="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all" >&2 \
      || die "could not resolve io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all with Maven"
  fi
  rm -rf "$APP_DIR"; mkdir -p "$APP_DIR"
  tar xzf "$tarball" -C "$APP_DIR" || die "could not unpack $tarball"
  [ -f "$JAR" ] || die "$tarball has no $(basename "$JAR")"
  touch "$APP_DIR/.complete"
}

start() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    log "already running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"; return
  fi
  require_tools java curl
  install
  rm -rf "$STATE"; mkdir -p "$STATE"
  local port="${REGISTRY_PORT:-$(free_port)}"
  port_is_free "$port" || die "port $port is taken; set REGISTRY_PORT to a free port"
  log "starting Apicurio Registry $VERSION on 127.0.0.1:$port (log: $STATE/registry.log)"
  # `exec`: the pid written is the registry's own, so `stop` signals it and not a subshell
  # whose end would leave it running.
  (cd "$APP_DIR" && exec setsid java -Xmx384m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -jar "$JAR" >>"$STATE/registry.log" 2>&1 < /dev/null) &
  echo $! > "$PIDFILE"
  local url="http://127.0.0.1:$port/apis/ccompat/v7"
  echo "SCHEMA_REGISTRY_URL=$url" > "$ENVFILE"
  wait_ready "$PIDFILE" "$STATE/registry.log" "the registry" curl -fsS "$url/subjects"
  log "ready: SCHEMA_REGISTRY_URL=$url"
}

stop() { stop_pidfile "$PIDFILE" 20; log "stopped"; }

status() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    echo "registry: running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"
  else
    echo "registry: not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  install) install ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
