#!/usr/bin/env bash
# The local MongoDB-wire store: SecantusDB's Rust server (secantusd-rs, from the crates.io
# crate secantus-mdb), MongoDB's wire protocol over WiredTiger, MongoDB's own storage
# engine: single-document atomicity, real secondary indexes, MongoDB 8's bulkWrite.
# It is GPL-2.0 and runs as a separate local process; nothing of it is linked into the
# services. Production runs on MongoDB (deploy/docker-compose.yml, deploy/k8s).
# Usage: store.sh fetch|start|stop|status    State in $RUN_DIR/store (pid: store.pid).
source "$(dirname "$0")/common.sh"

SECANTUS_VERSION="0.5.3-beta.196"
MONGO_PORT="${LOCAL_MONGO_PORT:-27017}"
STATE_DIR="$RUN_DIR/store"
PIDFILE="$STATE_DIR/store.pid"
URI="mongodb://127.0.0.1:$MONGO_PORT/"
INSTALL_DIR="$CACHE_DIR/secantus-mdb-$SECANTUS_VERSION"
BIN="$INSTALL_DIR/bin/secantusd-rs"
# --sync-on-commit: a commit is on disk before it is acknowledged. Without it a kill -9
# of the store loses the last acknowledged writes (measured: 1-14 in a write burst), and
# the services' "stored, then published, then committed" would no longer hold. Its cost is
# one log sync per commit; the services commit a batch's writes as one transaction.
# WiredTiger's cache: the default (4G) is sized for a server of its own.
CACHE_SIZE="${LOCAL_STORE_CACHE_SIZE:-1G}"

cargo_bin() {
  if command -v cargo >/dev/null; then command -v cargo
  elif [ -x "$HOME/.cargo/bin/cargo" ]; then echo "$HOME/.cargo/bin/cargo"
  else log "cargo (Rust) is needed once to build the local store; install it with rustup"; return 1
  fi
}

fetch() {
  if [ -x "$BIN" ]; then return 0; fi
  local cargo
  cargo="$(cargo_bin)"
  log "building secantusd-rs $SECANTUS_VERSION from crates.io into $INSTALL_DIR"
  log "(first time only: it compiles WiredTiger too, 10-20 min on 2 cores)"
  rm -rf "$INSTALL_DIR.tmp"
  # --locked: the crate's own lock file; --ignore-rust-version: it declares a newer
  # minimum Rust than it needs (it builds and passes the store tests with 1.95).
  CARGO_TARGET_DIR="$CACHE_DIR/cargo-target" "$cargo" install secantus-mdb \
    --version "$SECANTUS_VERSION" --root "$INSTALL_DIR.tmp" --locked --ignore-rust-version --quiet
  mv "$INSTALL_DIR.tmp" "$INSTALL_DIR"
  rm -rf "$CACHE_DIR/cargo-target"
}

start() {
  if pid_alive "$PIDFILE"; then
    "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" --timeout 30
    return 0
  fi
  fetch
  require_port "$MONGO_PORT" "the store" "stop it, or set LOCAL_MONGO_PORT / MONGODB_URI"
  mkdir -p "$STATE_DIR/data"
  log "starting secantusd-rs on $URI (data: $STATE_DIR/data, log: $STATE_DIR/store.log)"
  spawn "$PIDFILE" "$STATE_DIR/store.log" \
    "$BIN" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$STATE_DIR/data" \
    --cache-size "$CACHE_SIZE" --log-level WARNING --sync-on-commit
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" --timeout 60 --pid "$(cat "$PIDFILE")"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "the store" ;;
  status) pid_alive "$PIDFILE" && echo "running ($URI)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
