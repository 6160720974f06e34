# Shared settings for the local (no-Docker) infrastructure scripts. Sourced, not run.
# Downloads and builds are cached outside the repo; runtime state lives in .run/.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="${COMPLAINTS_CACHE_DIR:-$HOME/.cache/complaints}"
RUN_DIR="${COMPLAINTS_RUN_DIR:-$REPO_ROOT/.run}"
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
mkdir -p "$CACHE_DIR" "$RUN_DIR"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
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
