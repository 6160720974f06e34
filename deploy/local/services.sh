#!/usr/bin/env bash
# The four services and triage's insights worker as background processes, for
# `make up` / `make run` / `make down`.
# Usage: services.sh start|stop|status
source "$(dirname "$0")/common.sh"

SERVICES=(intake triage compensation followup insights)
PORT_BASE="${SERVICE_PORT_BASE:-8001}"
STATE_DIR="$RUN_DIR/services"
# A local Kafka / store started in a secure mode left their client settings in RUN_DIR.
load_client_env
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${LOCAL_KAFKA_PORT:-9092}}"
export MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:${LOCAL_MONGO_PORT:-27017}/}"

module_of() {
  # Triage's insights worker lives in the triage package.
  if [ "$1" = insights ]; then echo services.triage.insights; else echo "services.$1"; fi
}

port_of() {
  local i
  for i in "${!SERVICES[@]}"; do
    if [ "${SERVICES[$i]}" = "$1" ]; then echo $((PORT_BASE + i)); return 0; fi
  done
  return 1
}

start() {
  mkdir -p "$STATE_DIR"
  for name in "${SERVICES[@]}"; do
    local pidfile="$STATE_DIR/$name.pid"
    if pid_alive "$pidfile"; then continue; fi
    local port
    port="$(port_of "$name")"
    require_port "$port" "$name" "stop it, or set SERVICE_PORT_BASE"
    log "starting $name on :$port (log: $STATE_DIR/$name.log)"
    (cd "$REPO_ROOT" && spawn "$pidfile" "$STATE_DIR/$name.log" \
      env HTTP_PORT="$port" "$PYTHON" -m "$(module_of "$name")")
  done
  local urls=()
  for name in "${SERVICES[@]}"; do urls+=("$name=http://127.0.0.1:$(port_of "$name")"); done
  PYTHONPATH="$REPO_ROOT" "$PYTHON" "$REPO_ROOT/deploy/local/endpoints.py" --wait 120 --out "$RUN_DIR/endpoints.json" \
    --kafka "$KAFKA_BOOTSTRAP_SERVERS" "${urls[@]}"
  for name in "${SERVICES[@]}"; do
    pid_alive "$STATE_DIR/$name.pid" || { log "$name exited; see $STATE_DIR/$name.log"; return 1; }
  done
}

stop() {
  for name in "${SERVICES[@]}"; do stop_pid "$STATE_DIR/$name.pid" "$name"; done
}

status() {
  local rc=0
  for name in "${SERVICES[@]}"; do
    if pid_alive "$STATE_DIR/$name.pid"; then echo "$name: running on :$(port_of "$name")"
    else echo "$name: stopped"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
