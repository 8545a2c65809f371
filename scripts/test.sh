#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, every test.
# Installs and starts what the tests need when it is missing: dockerd, auditd and a busybox
# image (scripts/setup-docker.sh), a Python venv with the official Elasticsearch, OpenTelemetry
# and Fluent clients, and rsyslog (scripts/setup-ecosystem.sh), Debian's chromium and the
# console e2e test's npm packages (scripts/e2e.sh). cargo-nextest is used when
# present, else cargo test. Safe to run repeatedly; daemons already running are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1
# The tests read third-party sample data from ../shared/testdata when it is there.
if [ ! -d ../shared/testdata ]; then
  echo "warning: ../shared/testdata not found: tests that need recorded samples will fail" >&2
fi

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

bash scripts/setup-docker.sh  # dockerd, auditd and the busybox image for crates/cli/tests/agent.rs
step "ecosystem clients (Python venv, rsyslog)"
bash scripts/setup-ecosystem.sh

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "web console end to end (headless Chromium; screenshots in target/e2e-artifacts)"
bash scripts/e2e.sh

step "doc tests"
cargo test --workspace --locked --doc

step "benches compile"
cargo check --workspace --locked --benches
# The fuzz targets (fuzz/, cargo-fuzz, nightly) share their bodies with the normalize crate's
# proptests, which ran above on stable.
echo
echo "all checks passed"
