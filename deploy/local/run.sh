#!/usr/bin/env bash
# `make run`: local Kafka + the local store (unless KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI are set),
# the four services, the bundled samples (deploy/local/samples/) fed through, then running
# until Ctrl-C. Ctrl-C stops every process this script started, and nothing else.
#
# Each run is a fresh demo: the local Kafka and store it starts begin on empty data
# directories (the previous run's are removed first), so the samples open new cases every
# time instead of being recognised as duplicates of the last run. Servers that are already
# running (`make up`) are used as they are, with their state.
source "$(dirname "$0")/common.sh"
HERE="$REPO_ROOT/deploy/local"

started=()
cleanup() {
  trap - INT TERM EXIT
  # Ctrl-C also ends a `| tee` reading our output: keep stopping even if writes fail.
  trap '' PIPE
  set +e
  echo
  log "stopping what this run started: ${started[*]:-nothing}"
  for ((i=${#started[@]}-1; i>=0; i--)); do "$HERE/${started[$i]}.sh" stop; done
  return 0
}
trap cleanup INT TERM EXIT

# fresh_start NAME: start deploy/local/NAME.sh on empty state unless it is already running.
fresh_start() {
  if ! "$HERE/$1.sh" status >/dev/null 2>&1; then
    started+=("$1")
    log "fresh demo state: removing $RUN_DIR/$1 of the previous run"
    rm -rf "${RUN_DIR:?}/$1"
  fi
  "$HERE/$1.sh" start
}
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then fresh_start kafka; fi
if [ -z "${MONGODB_URI:-}" ]; then fresh_start store; fi
"$HERE/services.sh" status >/dev/null 2>&1 || started+=(services)
"$HERE/services.sh" start
"$HERE/prometheus.sh" status >/dev/null 2>&1 || started+=(prometheus)
"$HERE/prometheus.sh" start || log "Prometheus did not start; the services run without it"

PYTHONPATH="$REPO_ROOT" "$PYTHON" "$HERE/feed_samples.py" --endpoints "$RUN_DIR/endpoints.json" \
  --samples "${SAMPLES_DIR:-$HERE/samples}" || log "sample feed reported problems"

port_base="${SERVICE_PORT_BASE:-8001}"
echo
log "the system keeps running: metrics at http://127.0.0.1:$port_base/metrics … :$((port_base + 3))/metrics,"
log "Prometheus (targets, alert rules, queries) at http://127.0.0.1:${PROMETHEUS_PORT:-9090}/,"
log "service logs in $RUN_DIR/services/. Press Ctrl-C to stop."
while true; do sleep 3600 & wait $!; done
