# Shared settings for the local (no-Docker) infrastructure scripts. Sourced, not run.
# Downloads and builds are cached outside the repo; runtime state lives in .run/.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${COMPLAINTS_CACHE_DIR:-$HOME/.cache/complaints}"
RUN_DIR="${COMPLAINTS_RUN_DIR:-$REPO_ROOT/.run}"
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
mkdir -p "$CACHE_DIR" "$RUN_DIR"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2 2>/dev/null || true; }  # never fails: stdout may be a closed pipe

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# spawn PIDFILE LOGFILE CMD...: start CMD in its own session (so a Ctrl-C meant for the
# caller does not reach it) and record ITS pid. The child writes its own pid before exec:
# `$!` would name a short-lived parent when setsid has to fork.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  rm -f "$pidfile"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >> "$logfile" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    [ -s "$pidfile" ] && return 0
    sleep 0.05
  done
  log "could not start: $*"
  return 1
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for_port PORT SECONDS: true once something listens on 127.0.0.1:PORT.
wait_for_port() {
  for _ in $(seq 1 $(( $2 * 10 ))); do
    port_free "$1" || return 0
    sleep 0.1
  done
  return 1
}

# require_port PORT WHAT HINT: fail with a clear message when the port stays taken
# (a server that is still shutting down gets 15 s to let go of it).
require_port() {
  for _ in $(seq 1 150); do
    port_free "$1" && return 0
    sleep 0.1
  done
  log "port $1 for $2 is already in use by another process; $3"
  return 1
}

# stop_pid FILE NAME: SIGTERM, wait up to 30 s for a clean exit, then SIGKILL.
stop_pid() {
  local pidfile="$1" name="$2" pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"; log "$name is not running"; return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "$name stopped"; return 0; }
    sleep 0.1
  done
  log "$name did not stop within 30 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# make_tls DIR NAME: a local CA (once per DIR: DIR/ca.pem, DIR/ca.key) and a certificate
# NAME.pem / NAME.key it signed for 127.0.0.1 and localhost (server and client use). For the
# opt-in secure modes of the local Kafka and store; never for anything but this machine.
make_tls() {
  local dir="$1" name="$2"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/ca.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=complaints local CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  fi
  if [ ! -f "$dir/$name.pem" ]; then
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
      -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth,clientAuth" \
      "authorityKeyIdentifier=keyid" "subjectKeyIdentifier=hash" > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 825 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
  fi
  chmod 600 "$dir"/*.key
}

# secret_file FILE: FILE's content, created with a random password the first time.
secret_file() {
  if [ ! -s "$1" ]; then
    mkdir -p "$(dirname "$1")"
    (umask 077 && openssl rand -hex 16 > "$1")
  fi
  cat "$1"
}

# load_client_env: the client settings a local Kafka / store started in a secure mode left
# in RUN_DIR (KAFKA_SECURITY_PROTOCOL, credentials files, CA, MONGODB_URI with a user),
# exported for the services and tools started from here; only for servers we started.
load_client_env() {
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && [ -f "$RUN_DIR/kafka/client.env" ]; then
    set -a; source "$RUN_DIR/kafka/client.env"; set +a
  fi
  if [ -z "${MONGODB_URI:-}" ] && [ -f "$RUN_DIR/store/client.env" ]; then
    set -a; source "$RUN_DIR/store/client.env"; set +a
  fi
}
