#!/usr/bin/env bash
# The local MongoDB-wire store: SecantusDB's Rust server (secantusd-rs, from the crates.io
# crate secantus-mdb), MongoDB's wire protocol over WiredTiger, MongoDB's own storage
# engine: single-document atomicity, real secondary indexes, MongoDB 8's bulkWrite.
# It is GPL-2.0 and runs as a separate local process; nothing of it is linked into the
# services. Production runs on MongoDB (deploy/docker-compose.yml, deploy/k8s).
# Usage: store.sh fetch|start|stop|status    State in $RUN_DIR/store (pid: store.pid).
#
# LOCAL_STORE_SECURITY=auth_tls starts it as a production MongoDB runs: TLS with a
# certificate from a CA generated here, and SCRAM-SHA-256 authentication (--auth) with an
# administrator and the services' user (LOCAL_STORE_USERNAME, complaints; password
# LOCAL_STORE_PASSWORD or a random one in $STATE_DIR/secrets/client.password). The client
# settings (MONGODB_URI with the user, MONGODB_TLS_CA_FILE) are left in
# $STATE_DIR/client.env, which services.sh and run.sh load.
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
SECURITY="${LOCAL_STORE_SECURITY:-plain}"
TLS_DIR="$STATE_DIR/tls"
SECRETS_DIR="$STATE_DIR/secrets"
STORE_USERNAME="${LOCAL_STORE_USERNAME:-complaints}"

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

security_args() {
  [ "$SECURITY" = "plain" ] && return 0
  echo --auth --tls-cert-file "$TLS_DIR/store.pem" --tls-key-file "$TLS_DIR/store.key"
}

prepare_security() {
  rm -f "$STATE_DIR/client.env"
  [ "$SECURITY" = "plain" ] && return 0
  if [ "$SECURITY" != "auth_tls" ]; then
    log "LOCAL_STORE_SECURITY must be plain or auth_tls, not $SECURITY"; return 1
  fi
  make_tls "$TLS_DIR" store
  if [ -n "${LOCAL_STORE_PASSWORD:-}" ] && [ ! -s "$SECRETS_DIR/client.password" ]; then
    mkdir -p "$SECRETS_DIR"
    (umask 077 && printf '%s' "$LOCAL_STORE_PASSWORD" > "$SECRETS_DIR/client.password")
  fi
  secret_file "$SECRETS_DIR/client.password" > /dev/null
  secret_file "$SECRETS_DIR/admin.password" > /dev/null
  chmod 700 "$SECRETS_DIR"
}

# After start: the users (once), then the client settings with the user's password.
finish_security() {
  [ "$SECURITY" = "plain" ] && return 0
  "$PYTHON" "$REPO_ROOT/deploy/local/store_users.py" "mongodb://127.0.0.1:$MONGO_PORT/" \
    --ca-file "$TLS_DIR/ca.pem" --admin-password-file "$SECRETS_DIR/admin.password" \
    --user "$STORE_USERNAME" --password-file "$SECRETS_DIR/client.password"
  (umask 077 && cat > "$STATE_DIR/client.env" <<ENV
MONGODB_URI='mongodb://$STORE_USERNAME:$(cat "$SECRETS_DIR/client.password")@127.0.0.1:$MONGO_PORT/?tls=true&authSource=admin'
MONGODB_TLS_CA_FILE='$TLS_DIR/ca.pem'
ENV
  )
  probe --timeout 30
}

# Ask the store for ping, as the services will connect (with the user, over TLS).
probe() {
  local env_file=()
  [ -f "$STATE_DIR/client.env" ] && env_file=(--env-file "$STATE_DIR/client.env")
  "$PYTHON" "$REPO_ROOT/deploy/local/probe.py" mongo "$URI" "${env_file[@]}" "$@"
}

start() {
  if pid_alive "$PIDFILE"; then
    probe --timeout 30
    return 0
  fi
  fetch
  require_port "$MONGO_PORT" "the store" "stop it, or set LOCAL_MONGO_PORT / MONGODB_URI"
  mkdir -p "$STATE_DIR/data"
  prepare_security
  log "starting secantusd-rs on $URI ($SECURITY; data: $STATE_DIR/data, log: $STATE_DIR/store.log)"
  # shellcheck disable=SC2046 # security_args prints separate arguments (paths without spaces)
  spawn "$PIDFILE" "$STATE_DIR/store.log" \
    "$BIN" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$STATE_DIR/data" \
    --cache-size "$CACHE_SIZE" --log-level WARNING --sync-on-commit $(security_args)
  if [ "$SECURITY" = "plain" ]; then
    probe --timeout 60 --pid "$(cat "$PIDFILE")"
  else
    # Up once it accepts TLS connections; then the users and the authenticated probe.
    wait_for_port "$MONGO_PORT" 60 || { log "the store did not open port $MONGO_PORT"; return 1; }
    finish_security
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "$PIDFILE" "the store" ;;
  status) pid_alive "$PIDFILE" && echo "running ($URI)" || { echo "stopped"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
