#!/usr/bin/env bash
# The local MongoDB-wire store (today FerretDB v1 on SQLite, embedded in a tiny Go module).
# Usage: store.sh fetch|start|stop|status    State in $RUN_DIR/store (pid: store.pid).
source "$(dirname "$0")/common.sh"

MONGO_PORT="${LOCAL_MONGO_PORT:-27017}"
SRC_DIR="$REPO_ROOT/deploy/local/ferretdb"
STATE_DIR="$RUN_DIR/store"
PIDFILE="$STATE_DIR/store.pid"
URI="mongodb://127.0.0.1:$MONGO_PORT/"

# The binary is cached by the hash of its sources, so a changed go.mod rebuilds it.
src_hash() { cat "$SRC_DIR/go.mod" "$SRC_DIR/go.sum" "$SRC_DIR/main.go" | sha256sum | cut -c1-16; }
BIN="$CACHE_DIR/ferretdb-$(src_hash)/ferretdb-embedded"

build() {
  if [ -x "$BIN" ]; then return 0; fi
  log "building FerretDB (first time only, ~1 min) into $BIN"
  mkdir -p "$(dirname "$BIN")"
  (cd "$SRC_DIR" && go build -trimpath -o "$BIN.tmp" .)
  mv "$BIN.tmp" "$BIN"
}

start() {
  if pid_alive "$PIDFILE"; then
    "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" --timeout 30
    return 0
  fi
  build
  require_port "$MONGO_PORT" FerretDB "stop it, or set LOCAL_MONGO_PORT / MONGODB_URI"
  mkdir -p "$STATE_DIR/data"
  log "starting FerretDB on $URI (log: $STATE_DIR/store.log)"
  spawn "$PIDFILE" "$STATE_DIR/store.log" \
    "$BIN" -listen "127.0.0.1:$MONGO_PORT" -data "$STATE_DIR/data"
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" --timeout 60 --pid "$(cat "$PIDFILE")"
}

case "${1:-}" in
  fetch) build ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "the store" ;;
  status) pid_alive "$PIDFILE" && echo "running ($URI)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
