#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) from Maven Central jars.
# Usage: kafka.sh fetch|start|stop|status
#
# LOCAL_KAFKA_SECURITY=sasl_ssl starts it as a managed Kafka would run: one SASL_SSL
# listener (TLS with a certificate from a CA generated here, SCRAM-SHA-512 users created
# with Kafka's own storage tool when the storage is formatted). The client settings the
# services need are left in $STATE_DIR/client.env (services.sh and run.sh load them):
# user LOCAL_KAFKA_SASL_USERNAME (complaints), password LOCAL_KAFKA_SASL_PASSWORD or a
# random one kept in $STATE_DIR/secrets/client.password, CA $STATE_DIR/tls/ca.pem.
# Users and certificates are made once per state directory (`make clean` starts over).
source "$(dirname "$0")/common.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_PORT="${LOCAL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${LOCAL_KAFKA_CONTROLLER_PORT:-9093}"
LIB_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION/lib"
STATE_DIR="$RUN_DIR/kafka"
PIDFILE="$STATE_DIR/kafka.pid"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
SECURITY="${LOCAL_KAFKA_SECURITY:-plaintext}"
TLS_DIR="$STATE_DIR/tls"
SECRETS_DIR="$STATE_DIR/secrets"
SASL_USERNAME="${LOCAL_KAFKA_SASL_USERNAME:-complaints}"

fetch() {
  if [ -f "$LIB_DIR/.complete" ]; then return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars into $LIB_DIR"
  mkdir -p "$LIB_DIR"
  mvn -q -B -f "$REPO_ROOT/deploy/local/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$LIB_DIR" -DincludeScope=runtime
  touch "$LIB_DIR/.complete"
}

listener_config() {
  if [ "$SECURITY" = "plaintext" ]; then
    cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
PROPS
    return 0
  fi
  # The broker talks to itself over the same listener, as user "broker".
  cat <<PROPS
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret_file "$SECRETS_DIR/broker.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
PROPS
}

# The client settings for this broker, for the services and tools (KAFKA_* variables),
# in shell syntax (single-quoted: services.sh sources it).
write_client_env() {
  rm -f "$STATE_DIR/client.env"
  [ "$SECURITY" = "plaintext" ] && return 0
  cat > "$STATE_DIR/client.env" <<ENV
KAFKA_SECURITY_PROTOCOL='SASL_SSL'
KAFKA_SASL_MECHANISM='SCRAM-SHA-512'
KAFKA_SASL_USERNAME='$SASL_USERNAME'
KAFKA_SASL_PASSWORD_FILE='$SECRETS_DIR/client.password'
KAFKA_SSL_CA_FILE='$TLS_DIR/ca.pem'
ENV
}

prepare_security() {
  [ "$SECURITY" = "plaintext" ] && return 0
  if [ "$SECURITY" != "sasl_ssl" ]; then
    log "LOCAL_KAFKA_SECURITY must be plaintext or sasl_ssl, not $SECURITY"; return 1
  fi
  make_tls "$TLS_DIR" broker
  # Kafka's PEM key store: the private key (PKCS#8) followed by the certificate chain.
  cat "$TLS_DIR/broker.key" "$TLS_DIR/broker.pem" > "$TLS_DIR/broker-keystore.pem"
  chmod 600 "$TLS_DIR/broker-keystore.pem"
  if [ -n "${LOCAL_KAFKA_SASL_PASSWORD:-}" ] && [ ! -s "$SECRETS_DIR/client.password" ]; then
    mkdir -p "$SECRETS_DIR"
    (umask 077 && printf '%s' "$LOCAL_KAFKA_SASL_PASSWORD" > "$SECRETS_DIR/client.password")
  fi
  secret_file "$SECRETS_DIR/client.password" > /dev/null
  secret_file "$SECRETS_DIR/broker.password" > /dev/null
  chmod 700 "$SECRETS_DIR"
}


write_config() {
  mkdir -p "$STATE_DIR/data"
  prepare_security
  cat > "$STATE_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
$(listener_config)
controller.listener.names=CONTROLLER
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
  chmod 600 "$STATE_DIR/server.properties"
  write_client_env
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
    probe --timeout 60
    return 0
  fi
  fetch
  require_port "$KAFKA_PORT" Kafka "stop it, or set LOCAL_KAFKA_PORT / KAFKA_BOOTSTRAP_SERVERS"
  require_port "$CONTROLLER_PORT" "the Kafka controller" "set LOCAL_KAFKA_CONTROLLER_PORT"
  write_config
  # A small local broker on a few cores: the client (C1) compiler only, because C2's
  # compilations during the first bursts cost more CPU than its faster code saves here
  # (make bench: Kafka's CPU per complaint 1.44 → 0.88 ms in the first burst), and the
  # serial collector, whose single thread suits a 512 MB heap.
  local java_opts="-Xmx512m -Xms256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
  java_opts+=" -Dlog4j2.configurationFile=$STATE_DIR/log4j2.properties"
  if [ ! -f "$STATE_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java $java_opts -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid)"
    log "formatting storage (cluster $cluster_id)"
    # Kafka's storage tool creates the SCRAM users when it formats the storage (KIP-900).
    local scram=()
    if [ "$SECURITY" != "plaintext" ]; then
      scram=(--add-scram "SCRAM-SHA-512=[name=broker,password=$(cat "$SECRETS_DIR/broker.password")]"
             --add-scram "SCRAM-SHA-512=[name=$SASL_USERNAME,password=$(cat "$SECRETS_DIR/client.password")]")
    fi
    java $java_opts -cp "$LIB_DIR/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$STATE_DIR/server.properties" -g "${scram[@]}" > "$STATE_DIR/format.log" 2>&1
  fi
  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP ($SECURITY; log: $STATE_DIR/server.log)"
  # shellcheck disable=SC2086 # java_opts is a list of options
  spawn "$PIDFILE" "$STATE_DIR/stdout.log" \
    java $java_opts -cp "$LIB_DIR/*" kafka.Kafka "$STATE_DIR/server.properties"
  probe --timeout 120 --pid "$(cat "$PIDFILE")"
}

# Ask the broker for its metadata, through the listener the clients use.
probe() {
  local env_file=()
  [ -f "$STATE_DIR/client.env" ] && env_file=(--env-file "$STATE_DIR/client.env")
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" kafka "$BOOTSTRAP" "${env_file[@]}" "$@"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "Kafka" ;;
  status) pid_alive "$PIDFILE" && echo "running ($BOOTSTRAP)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
