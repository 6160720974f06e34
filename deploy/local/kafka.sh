#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) from Maven Central jars.
# Usage: kafka.sh fetch|start|stop|status
source "$(dirname "$0")/common.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_PORT="${LOCAL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${LOCAL_KAFKA_CONTROLLER_PORT:-9093}"
LIB_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION/lib"
STATE_DIR="$RUN_DIR/kafka"
PIDFILE="$STATE_DIR/kafka.pid"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

fetch() {
  if [ -f "$LIB_DIR/.complete" ]; then return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars into $LIB_DIR"
  mkdir -p "$LIB_DIR"
  mvn -q -B -f "$REPO_ROOT/deploy/local/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$LIB_DIR" -DincludeScope=runtime
  touch "$LIB_DIR/.complete"
}

write_config() {
  mkdir -p "$STATE_DIR/data"
  cat > "$STATE_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STATE_DIR/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
# Mail with attachments exceeds Kafka's 1 MiB default; intake decides what is too large.
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=168
PROPS
  cat > "$STATE_DIR/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $STATE_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS
}

start() {
  if pid_alive "$PIDFILE"; then
    "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" kafka "$BOOTSTRAP" --timeout 60
    return 0
  fi
  fetch
  require_port "$KAFKA_PORT" Kafka "stop it, or set LOCAL_KAFKA_PORT / KAFKA_BOOTSTRAP_SERVERS"
  require_port "$CONTROLLER_PORT" "the Kafka controller" "set LOCAL_KAFKA_CONTROLLER_PORT"
  write_config
  local java_opts="-Xmx512m -Xms256m -XX:+UseG1GC -Dlog4j2.configurationFile=$STATE_DIR/log4j2.properties"
  if [ ! -f "$STATE_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java $java_opts -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid)"
    log "formatting storage (cluster $cluster_id)"
    java $java_opts -cp "$LIB_DIR/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$STATE_DIR/server.properties" -g > "$STATE_DIR/format.log" 2>&1
  fi
  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (log: $STATE_DIR/server.log)"
  # shellcheck disable=SC2086 # java_opts is a list of options
  spawn "$PIDFILE" "$STATE_DIR/stdout.log" \
    java $java_opts -cp "$LIB_DIR/*" kafka.Kafka "$STATE_DIR/server.properties"
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" kafka "$BOOTSTRAP" --timeout 120 --pid "$(cat "$PIDFILE")"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "Kafka" ;;
  status) pid_alive "$PIDFILE" && echo "running ($BOOTSTRAP)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
