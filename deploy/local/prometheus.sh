#!/usr/bin/env bash
# A real Prometheus server (Debian's `prometheus` package) scraping the four local
# services and evaluating deploy/prometheus/rules. Usage: prometheus.sh start|stop|status
# PROMETHEUS_PORT (default 9090) and SERVICE_PORT_BASE (default 8001) as for services.sh.
source "$(dirname "$0")/common.sh"

PORT="${PROMETHEUS_PORT:-9090}"
PORT_BASE="${SERVICE_PORT_BASE:-8001}"
STATE_DIR="$RUN_DIR/prometheus"
PIDFILE="$STATE_DIR/prometheus.pid"
RULES="$REPO_ROOT/deploy/prometheus/rules/complaints.rules.yml"

write_config() {
  local i=0 name
  {
    echo "# Written by deploy/local/prometheus.sh; edit that script, not this file."
    echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
    echo "rule_files: [\"$RULES\"]"
    echo "scrape_configs:"
    echo "  - job_name: complaints"
    echo "    static_configs:"
    for name in intake triage compensation followup insights; do
      echo "      - targets: [\"127.0.0.1:$((PORT_BASE + i))\"]"
      echo "        labels: {service: $name}"
      i=$((i + 1))
    done
  } > "$STATE_DIR/prometheus.yml"
}

start() {
  command -v prometheus >/dev/null || { log "prometheus is not installed (make prometheus-install)"; return 1; }
  mkdir -p "$STATE_DIR/data"
  if pid_alive "$PIDFILE"; then log "already running on :$PORT"; return 0; fi
  require_port "$PORT" prometheus "stop it, or set PROMETHEUS_PORT"
  write_config
  promtool check config "$STATE_DIR/prometheus.yml" >/dev/null
  log "starting Prometheus on :$PORT (UI http://127.0.0.1:$PORT/, log $STATE_DIR/prometheus.log)"
  spawn "$PIDFILE" "$STATE_DIR/prometheus.log" prometheus \
    --config.file="$STATE_DIR/prometheus.yml" --storage.tsdb.path="$STATE_DIR/data" \
    --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=2d
  for _ in $(seq 1 300); do
    if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "http://127.0.0.1:$PORT/-/ready" 2>/dev/null; then
      echo "{\"prometheus\": \"http://127.0.0.1:$PORT\"}" > "$STATE_DIR/endpoint.json"
      return 0
    fi
    pid_alive "$PIDFILE" || break
    sleep 0.1
  done
  log "Prometheus did not become ready; see $STATE_DIR/prometheus.log"
  return 1
}

stop() { stop_pid "$PIDFILE" prometheus; }

status() {
  if pid_alive "$PIDFILE"; then echo "prometheus: running on :$PORT"; else echo "prometheus: stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
