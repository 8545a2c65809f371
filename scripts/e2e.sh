#!/usr/bin/env bash
# End-to-end test of the web console in headless Chromium (tests/e2e/console.test.mjs):
# installs Debian's chromium and the pinned npm packages (playwright-core, axe-core) when they
# are missing, builds the binary, runs the test. Screenshots: target/e2e-artifacts/.
# Fails loudly when anything is missing or fails; never skips. Needs no stdin (CI).
#
# `scripts/e2e.sh bench [EVENTS]`: instead, the console's first-results benchmark
# (tests/e2e/first-results.bench.mjs) on a release build: EVENTS (default 1,000,000) generated
# events loaded with `crowsnest bench`, then the search page timed in Chromium. Not part of CI
# (the load takes minutes); its figures are in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "installing chromium (Debian package)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $CHROMIUM is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null
fi
command -v node >/dev/null || { echo "error: node is needed for the console e2e test (apt-get install nodejs npm)" >&2; exit 1; }
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/axe-core ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund </dev/null)
fi
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target";; esac
export CHROMIUM
if [ "${1:-}" = "bench" ]; then
  if [ -z "${CROWSNEST_BIN:-}" ]; then
    cargo build --locked --release -p crowsnest
    export CROWSNEST_BIN="$target/release/crowsnest"
  fi
  EVENTS="${2:-1000000}" node tests/e2e/first-results.bench.mjs
  exit
fi
cargo build --locked -p crowsnest
export CROWSNEST_BIN="$target/debug/crowsnest"
export E2E_ARTIFACTS="${E2E_ARTIFACTS:-$PWD/target/e2e-artifacts}"
node tests/e2e/console.test.mjs
