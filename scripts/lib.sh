#!/usr/bin/env bash
# Shared by scripts/test and scripts/bench: installs and starts what the suite needs on a bare
# Debian machine (a pinned moto in a venv, Docker), and stops what it started on exit.
# Source it; it sets an EXIT trap.

source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

MOTO_VERSION="5.2.5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CLAWGATE_TEST_VENV:-$ROOT/.venv-test}"
RUN_DIR="$(mktemp -d -t clawgate-test.XXXXXX)"
STARTED_PIDS=()

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

cleanup() {
  local status=$?
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$RUN_DIR"
  exit "$status"
}
trap cleanup EXIT INT TERM

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install $*; install them and re-run"
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up within ${seconds}s"
  return 1
}

ensure_python() {
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}

ensure_moto() {
  pinned_venv "$VENV" 'moto[server]' "$MOTO_VERSION"
}

start_moto() {
  local port
  port="$(free_port)"
  # Through our launcher: moto's DynamoDB writes made atomic, as DynamoDB's are (see the file).
  # AWS-managed IAM policies loaded, as in AWS: the worker fleet attaches one (Session Manager).
  MOTO_IAM_LOAD_MANAGED_POLICIES=true "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$RUN_DIR/moto.log" 2>&1 &
  STARTED_PIDS+=("$!")
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  wait_for 30 "moto on port $port" python3 -c "import urllib.request as u; u.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=1)" \
    || { cat "$RUN_DIR/moto.log" >&2; exit 1; }
  log "moto $MOTO_VERSION serving DynamoDB and SQS at $AWS_ENDPOINT_URL"
}

ensure_docker() {
  # The static busybox is what the tests' FROM-scratch sandbox image is built from.
  dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
  # debootstrap makes the local Debian base the quick-start test builds Dockerfile.sandbox on
  # (no registry here to pull debian:bookworm-slim from).
  command -v debootstrap >/dev/null || apt_install debootstrap
  if docker info >/dev/null 2>&1; then
    log "docker daemon already running"
    return
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  log "starting dockerd"
  dockerd >"$RUN_DIR/dockerd.log" 2>&1 &
  STARTED_PIDS+=("$!")
  wait_for 60 "dockerd" docker info || { tail -20 "$RUN_DIR/dockerd.log" >&2; exit 1; }
  log "dockerd $(docker version --format '{{.Server.Version}}') is up"
}

# Debian's Chromium and ChromeDriver for the WebChat browser test. Sets CLAWGATE_REQUIRE_BROWSER=1
# when they are there, so the test cannot skip; when they cannot be installed, says why and the
# test prints that it skipped.
ensure_chromium() {
  if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
    apt_install chromium chromium-driver || log "chromium could not be installed: the browser test will skip"
  fi
  if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
    export CLAWGATE_REQUIRE_BROWSER=1
  fi
}

# Starts moto unless AWS_ENDPOINT_URL already names an emulator, and exports the variables the
# AWS SDK and the suites read.
start_emulator() {
  ensure_python
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    log "using the emulator at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
  else
    ensure_moto
    start_moto
  fi
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
}
