#!/usr/bin/env bash
# FerretDB v1 (MongoDB wire protocol, SQLite backend) embedded in a tiny Go module.
# Usage: ferretdb.sh build|start|stop|status
source "$(dirname "$0")/common.sh"

MONGO_PORT="${LOCAL_MONGO_PORT:-27017}"
SRC_DIR="$REPO_ROOT/deploy/local/ferretdb"
STATE_DIR="$RUN_DIR/ferretdb"
PIDFILE="$STATE_DIR/ferretdb.pid"
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
  log "starting FerretDB on $URI (log: $STATE_DIR/ferretdb.log)"
  spawn "$PIDFILE" "$STATE_DIR/ferretdb.log" \
    "$BIN" -listen "127.0.0.1:$MONGO_PORT" -data "$STATE_DIR/data"
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" --timeout 60 --pid "$(cat "$PIDFILE")"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "FerretDB" ;;
  status) pid_alive "$PIDFILE" && echo "running ($URI)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 build|start|stop|status" >&2; exit 2 ;;
esac
