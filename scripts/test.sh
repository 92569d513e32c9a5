#!/usr/bin/env bash
# Runs the whole Portcullis test suite on a fresh machine: installs what the tests need when it
# is missing (Debian packages: Redis, promtool, nginx, Chromium and chromedriver; Keycloak from Maven
# Central), then formatting and lint checks, unit, integration and end-to-end tests.
# Usage: scripts/test.sh            (the README's test command; .ci/run calls it too)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_packages=()
command -v cc >/dev/null 2>&1 || need_packages+=(build-essential)
command -v cmake >/dev/null 2>&1 || need_packages+=(cmake)
command -v pkg-config >/dev/null 2>&1 || need_packages+=(pkg-config)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v promtool >/dev/null 2>&1 || need_packages+=(prometheus)
command -v curl >/dev/null 2>&1 || need_packages+=(curl)
command -v python3 >/dev/null 2>&1 || need_packages+=(python3)
# A real headless browser for the sign-in end-to-end test (driven over WebDriver).
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_packages+=(chromium-driver)
# nginx for the forward-auth (auth_request) integration test.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_packages+=(nginx)
if ((${#need_packages[@]})); then
  log "installing ${need_packages[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

log "cargo fmt --check"
cargo fmt --all -- --check

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target_dir"
# The build of every test binary needs ~3.2 GB under target/ (measured on a fresh clone); say so
# up front rather than fail at a link step with "No space left on device".
free_kib=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((4 * 1024 * 1024)) ]; then
  echo "warning: $((free_kib / 1024)) MiB free under $target_dir; the test build needs about 4 GB" >&2
fi
# A one-off run gains nothing from incremental compilation, which would write gigabytes of
# session files next to the test binaries. A developer can still set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

log "imports point one way (no circle between modules or between the files of a folder)"
python3 scripts/check_imports.py

if command -v systemd-analyze >/dev/null 2>&1; then
  log "systemd-analyze verify deploy/portcullis.service"
  unit_dir=$(mktemp -d)
  cargo build --quiet --bin portcullis
  sed "s|/usr/local/bin/portcullis|$target_dir/debug/portcullis|g" deploy/portcullis.service > "$unit_dir/portcullis.service"
  systemd-analyze verify "$unit_dir/portcullis.service"
  rm -rf "$unit_dir"
fi

log "cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee "$target_dir/test-output.log"

log "end-to-end tests against a real Keycloak, Redis and Chromium"
started_keycloak=0
if ! scripts/keycloak.sh status >/dev/null 2>&1; then started_keycloak=1; fi
scripts/keycloak.sh start
if [ "$started_keycloak" = 1 ]; then trap 'scripts/keycloak.sh stop' EXIT; fi
echo "==> end-to-end pass" >> "$target_dir/test-output.log"
KEYCLOAK_URL=$(scripts/keycloak.sh url) cargo test --test e2e_keycloak --test e2e_sign_in --test e2e_doctor -- --ignored --test-threads=1 2>&1 | tee -a "$target_dir/test-output.log"

# One closing line for the whole run (cargo prints one summary per test target). The
# end-to-end tests are ignored in the first pass and run in the second, so they count as run,
# not skipped.
awk '/^==> end-to-end pass/ { e2e = 1 }
     /^test result:/ { for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) { p += $i; if (e2e) ran += $i }
         if ($(i+1) ~ /^failed/) { f += $i; if (e2e) ran += $i }
         if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed (%d of them end-to-end), %d failed, %d skipped\n", p, ran, f, s - ran }' "$target_dir/test-output.log"
