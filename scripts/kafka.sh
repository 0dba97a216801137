#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1,
# resolved from Maven Central — no Docker, no tarball.
#
#   scripts/kafka.sh start     resolve jars (cached), format, start, wait for a metadata answer
#   scripts/kafka.sh stop      SIGTERM to the broker's own pid
#   scripts/kafka.sh restart   stop + start on the same port and data (for fault tests)
#   scripts/kafka.sh resume    start again on the same port and data after `stop`
#   scripts/kafka.sh status    running or not, and where
#   scripts/kafka.sh env       prints KAFKA_BOOTSTRAP_SERVERS=... of the running broker
#
# Monitoring, with Kafka's own tools (the classes behind the release's bin/*.sh, same flags),
# against KAFKA_BOOTSTRAP_SERVERS if set, else the broker this script started:
#   scripts/kafka.sh topics [flags]         kafka-topics (default: --describe)
#   scripts/kafka.sh groups [flags]         kafka-consumer-groups (default: --describe
#                                           --all-groups: each group's offsets and LAG)
#   scripts/kafka.sh consume TOPIC [flags]  kafka-console-consumer from the beginning, with
#                                           keys and headers, for 10 s (e.g. a .dlq topic)
#
# KAFKA_PORT picks the client port (default: a free one; `scripts/up.sh` asks for 29092).
# The bootstrap address is written to $RTFM_RUN_DIR/kafka.env for tests and other scripts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
LIB_DIR="$ROOT/.rtfm/kafka-$KAFKA_VERSION/lib"
STATE="$RTFM_RUN_DIR/kafka"
PIDFILE="$STATE/kafka.pid"
ENVFILE="$RTFM_RUN_DIR/kafka.env"

# The jar folder is complete for this pom.xml (a changed pom resolves again).
POM_HASH="$(sha256sum "$ROOT/scripts/kafka/pom.xml" | cut -c1-12)"

resolve() {
  if [ -f "$LIB_DIR/.complete-$POM_HASH" ]; then return; fi
  require_tools mvn java
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central (cached in ~/.m2 after the first time)"
  rm -rf "$LIB_DIR"; mkdir -p "$LIB_DIR"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB_DIR" >&2 \
    || die "could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven (is Maven Central reachable?)"
  touch "$LIB_DIR/.complete-$POM_HASH"
}

# Runs one of Kafka's command-line tools (main class $1) with --bootstrap-server.
tool() {
  local class="$1"; shift
  require_tools java
  resolve
  local bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-}"
  if [ -z "$bootstrap" ] && [ -f "$ENVFILE" ]; then
    bootstrap="$(sed -n 's/^KAFKA_BOOTSTRAP_SERVERS=//p' "$ENVFILE")"
  fi
  [ -n "$bootstrap" ] || die "no broker: set KAFKA_BOOTSTRAP_SERVERS or start one with scripts/kafka.sh start"
  java -Xmx256m -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/tools-log4j2.properties" \
    "$class" --bootstrap-server "$bootstrap" "$@"
}

java_run() { java -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$STATE/log4j2.properties" "$@"; }

write_config() {
  local port="$1" controller_port="$2"
  mkdir -p "$STATE/data"
  cat > "$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
auto.create.topics.enable=false
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=10000
PROPS
  cat > "$STATE/log4j2.properties" <<'PROPS'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
PROPS
}

current_port() { sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$STATE/server.properties" 2>/dev/null; }

start() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    log "already running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"; return
  fi
  require_tools java python3
  local java_major
  java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
  [ -n "$java_major" ] && [ "$java_major" -ge 17 ] \
    || die "Kafka $KAFKA_VERSION needs Java 17 or newer; \`java\` is ${java_major:-unknown} (Debian: apt-get install openjdk-17-jre-headless)"
  resolve
  local port controller_port reuse="${1:-}"
  if [ "$reuse" = reuse ] && [ -f "$STATE/server.properties" ]; then
    port="$(current_port)"
    controller_port="$(sed -n 's/^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$/\1/p' "$STATE/server.properties")"
    # While the broker was stopped, another program may have been given its controller port
    # (an ephemeral port); clients only know the broker's port, so the controller moves.
    if ! port_is_free "$controller_port"; then
      local moved
      moved="$(free_port)"
      log "controller port $controller_port is taken now; the controller moves to $moved"
      sed -i "s/127\.0\.0\.1:$controller_port\b/127.0.0.1:$moved/g" "$STATE/server.properties"
      controller_port="$moved"
    fi
  else
    rm -rf "$STATE"; mkdir -p "$STATE"
    port="${KAFKA_PORT:-$(free_port)}"
    port_is_free "$port" || die "port $port is taken; set KAFKA_PORT to a free port"
    controller_port="$(free_port)"
    write_config "$port" "$controller_port"
    local cluster_id
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid)"
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE/server.properties" \
      --ignore-formatted >"$STATE/format.log" 2>&1 \
      || { cat "$STATE/format.log" >&2; die "formatting the KRaft log dir failed"; }
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (log: $STATE/kafka.log)"
  # setsid: the broker gets its own session so a Ctrl-C in the caller's terminal does not hit it.
  setsid java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
    -cp "$LIB_DIR/*" kafka.Kafka "$STATE/server.properties" >>"$STATE/kafka.log" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port" > "$ENVFILE"
  wait_ready "$PIDFILE" "$STATE/kafka.log" "the broker" \
    python3 "$ROOT/scripts/kafka_metadata.py" 127.0.0.1 "$port"
  log "ready: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port"
}

stop() { stop_pidfile "$PIDFILE" 30; log "stopped"; }

status() {
  if [ -f "$PIDFILE" ] && pid_alive "$(cat "$PIDFILE")"; then
    echo "kafka: running (pid $(cat "$PIDFILE")), $(cat "$ENVFILE")"
  else
    echo "kafka: not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop_pidfile "$PIDFILE" 30; start reuse ;;
  resume) start reuse ;;
  status) status ;;
  env) cat "$ENVFILE" ;;
  topics)
    shift; [ $# -gt 0 ] || set -- --describe
    tool org.apache.kafka.tools.TopicCommand "$@" ;;
  groups)
    shift; [ $# -gt 0 ] || set -- --describe --all-groups
    tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  consume)
    [ $# -ge 2 ] || die "usage: $0 consume TOPIC [kafka-console-consumer flags]"
    topic="$2"; shift 2
    case " $* " in *" --timeout-ms "*) ;; *) set -- --timeout-ms 10000 "$@" ;; esac
    tool org.apache.kafka.tools.consumer.ConsoleConsumer --topic "$topic" --from-beginning \
      --property print.key=true --property print.headers=true "$@" ;;
  *) echo "usage: $0 start|stop|restart|resume|status|env|topics|groups|consume" >&2; exit 2 ;;
esac
