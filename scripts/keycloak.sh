#!/usr/bin/env bash
# A real Keycloak for the end-to-end tests (tests/e2e_keycloak.rs).
#
#   scripts/keycloak.sh start   download (once, cached) and start Keycloak in dev mode with the realms of
#                               tests/fixtures/keycloak/ imported; waits until it is ready; reuses a
#                               running instance. Prints the version and how long the start took.
#   scripts/keycloak.sh stop    stops the instance started by `start`
#   scripts/keycloak.sh url     prints the base URL (e.g. http://127.0.0.1:18080)
#   scripts/keycloak.sh status  exits 0 when the instance is ready
#   scripts/keycloak.sh log     prints the tail of its log
#
# Environment:
#   PORTCULLIS_CACHE     cache directory (default ~/.cache/portcullis); Keycloak is unpacked into
#                        $PORTCULLIS_CACHE/keycloak-<version>; its pid and log go to $PORTCULLIS_CACHE/keycloak-run/
#   KEYCLOAK_VERSION     a 26.x version to use instead of the pinned one
#   KEYCLOAK_PORT        HTTP port (default 18080); KEYCLOAK_MANAGEMENT_PORT (default 19000)
#   KEYCLOAK_START_TIMEOUT  seconds to wait for readiness (default 300)
#
# The admin user is admin/admin (bootstrap admin of the master realm); it listens on 127.0.0.1 only.
# Keycloak 26.6+ needs Java 21+ (Temurin 25 is used when present); with only Java 17 the older
# 26.5.x line is used. Maven and a JDK are installed with apt-get when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ORIGINAL_JAVA_HOME="${JAVA_HOME:-}"
CACHE="${PORTCULLIS_CACHE:-$HOME/.cache/portcullis}"
RUN_DIR="$CACHE/keycloak-run"
PORT="${KEYCLOAK_PORT:-18080}"
MANAGEMENT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-19000}"
HOST=127.0.0.1
BASE_URL="http://$HOST:$PORT"
START_TIMEOUT="${KEYCLOAK_START_TIMEOUT:-300}"
VERSION_NEW=26.7.3 # needs Java 21+ (runs on Temurin 25)
VERSION_OLD=26.5.6 # the newest 26.5.x, still runs on Java 17

log() { printf '[keycloak] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >&2
}

java_major() { # JAVA binary -> major version
  "$1" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

# Chooses JAVA_HOME and the Keycloak version: the newest pinned version the available JDK runs.
choose_java_and_version() {
  local candidates=() java major
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  candidates+=(/usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64)
  for dir in /usr/lib/jvm/*; do [ -d "$dir" ] && candidates+=("$dir"); done
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  local best_home="" best_major=0
  for home in "${candidates[@]}"; do
    java="$home/bin/java"
    [ -x "$java" ] || continue
    major="$(java_major "$java" || true)"
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if ((major > best_major)); then
      best_major=$major
      best_home=$home
    fi
  done
  if ((best_major < 17)); then
    apt_install openjdk-17-jre-headless
    best_home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
    best_major=17
  fi
  export JAVA_HOME="$best_home"
  if [ -n "${KEYCLOAK_VERSION:-}" ]; then
    VERSION="$KEYCLOAK_VERSION"
  elif ((best_major >= 21)); then
    VERSION="$VERSION_NEW"
  else
    VERSION="$VERSION_OLD"
  fi
  KC_HOME="$CACHE/keycloak-$VERSION"
  log "Java $best_major at $JAVA_HOME; Keycloak $VERSION"
}

download() {
  if [ -x "$KC_HOME/bin/kc.sh" ]; then
    return
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  mkdir -p "$CACHE"
  local started=$SECONDS download_dir="$CACHE/download"
  local zip="$download_dir/keycloak-quarkus-dist-$VERSION.zip"
  if ! unzip -tq "$zip" >/dev/null 2>&1; then
    log "downloading org.keycloak:keycloak-quarkus-dist:$VERSION:zip from Maven Central"
    # Maven runs on the JDK it was installed with (not necessarily the one chosen for Keycloak).
    JAVA_HOME="$ORIGINAL_JAVA_HOME" mvn -q -B dependency:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
      -DoutputDirectory="$download_dir" -Dmaven.repo.local="$CACHE/m2" >&2
  fi
  [ -f "$zip" ] || die "the download did not produce $zip"
  local tmp="$CACHE/unpack.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  unzip -q "$zip" -d "$tmp"
  rm -rf "$KC_HOME"
  mv "$tmp/keycloak-$VERSION" "$KC_HOME"
  rm -rf "$tmp" "$zip" "$CACHE/m2/org/keycloak"
  log "downloaded and unpacked in $((SECONDS - started)) s into $KC_HOME"
}

ready() {
  curl -fsS --max-time 2 "http://$HOST:$MANAGEMENT_PORT/health/ready" >/dev/null 2>&1 &&
    curl -fsS --max-time 2 "$BASE_URL/realms/acme/.well-known/openid-configuration" >/dev/null 2>&1
}

running_pid() {
  local pid
  pid="$(cat "$RUN_DIR/keycloak.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

start() {
  mkdir -p "$RUN_DIR"
  if [ -n "$(running_pid)" ]; then
    # Started before (maybe still starting): reuse it once ready.
    local deadline=$((SECONDS + START_TIMEOUT))
    until ready || [ -z "$(running_pid)" ] || ((SECONDS > deadline)); do sleep 0.5; done
    if ready; then
      log "Keycloak $(cat "$RUN_DIR/version" 2>/dev/null) already running (pid $(running_pid)) at $BASE_URL"
      echo "$BASE_URL"
      return
    fi
    stop
  fi
  if curl -fsS --max-time 2 "$BASE_URL" >/dev/null 2>&1 || ready; then
    die "something else answers on $BASE_URL; set KEYCLOAK_PORT"
  fi
  choose_java_and_version
  download
  # Realms are imported at each start (dev-mem keeps nothing between starts).
  rm -rf "$KC_HOME/data/import"
  mkdir -p "$KC_HOME/data/import"
  cp "$ROOT"/tests/fixtures/keycloak/*.json "$KC_HOME/data/import/"
  local started
  started=$(date +%s.%N)
  log "starting Keycloak $VERSION on $BASE_URL (management port $MANAGEMENT_PORT)"
  (
    cd "$RUN_DIR"
    export KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin
    export JAVA_OPTS_KC_HEAP="${JAVA_OPTS_KC_HEAP:--Xms64m -Xmx512m}"
    # start-dev: the first start of a version augments the server for these options (about a
    # minute); later starts with the same options skip that step.
    exec setsid "$KC_HOME/bin/kc.sh" start-dev \
      --http-host="$HOST" --http-port="$PORT" \
      --http-management-port="$MANAGEMENT_PORT" \
      --hostname="$BASE_URL" \
      --import-realm --log-level=info --db=dev-mem --health-enabled=true \
      </dev/null >"$RUN_DIR/keycloak.log" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$RUN_DIR/keycloak.pid"
  echo "$VERSION" >"$RUN_DIR/version"
  local deadline=$((SECONDS + START_TIMEOUT))
  until ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -60 "$RUN_DIR/keycloak.log" >&2
      die "Keycloak exited during start-up (log: $RUN_DIR/keycloak.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -60 "$RUN_DIR/keycloak.log" >&2
      die "Keycloak not ready after $START_TIMEOUT s (log: $RUN_DIR/keycloak.log)"
    fi
    sleep 0.5
  done
  local took
  took=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  log "Keycloak $VERSION ready at $BASE_URL in $took s (pid $pid, log $RUN_DIR/keycloak.log)"
  echo "$BASE_URL"
}

stop() {
  local pid
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    log "not running"
    rm -f "$RUN_DIR/keycloak.pid"
    return
  fi
  # kc.sh was started with setsid: its process group holds the JVM.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$RUN_DIR/keycloak.pid"
  log "stopped (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url) echo "$BASE_URL" ;;
status) ready ;;
log) tail -n "${2:-80}" "$RUN_DIR/keycloak.log" ;;
*)
  echo "usage: $0 start|stop|url|status|log [lines]" >&2
  exit 2
  ;;
esac
