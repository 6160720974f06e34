#!/usr/bin/env bash
# `make run`: local Kafka + FerretDB (unless KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI are set),
# the four services, the bundled samples fed through, then running until Ctrl-C.
# Ctrl-C stops every process this script started, and nothing else.
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

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  "$HERE/kafka.sh" status >/dev/null 2>&1 || started+=(kafka)
  "$HERE/kafka.sh" start
fi
if [ -z "${MONGODB_URI:-}" ]; then
  "$HERE/store.sh" status >/dev/null 2>&1 || started+=(store)
  "$HERE/store.sh" start
fi
"$HERE/services.sh" status >/dev/null 2>&1 || started+=(services)
"$HERE/services.sh" start
"$HERE/prometheus.sh" status >/dev/null 2>&1 || started+=(prometheus)
"$HERE/prometheus.sh" start || log "Prometheus did not start; the services run without it"

PYTHONPATH="$REPO_ROOT" "$PYTHON" "$HERE/feed_samples.py" --endpoints "$RUN_DIR/endpoints.json" \
  --samples "${SAMPLES_DIR:-$REPO_ROOT/../shared/samples}" || log "sample feed reported problems"

echo
log "the system keeps running: metrics at http://127.0.0.1:8001/metrics … :8004/metrics,"
log "Prometheus (targets, alert rules, queries) at http://127.0.0.1:${PROMETHEUS_PORT:-9090}/,"
log "service logs in $RUN_DIR/services/. Press Ctrl-C to stop."
while true; do sleep 3600 & wait $!; done
