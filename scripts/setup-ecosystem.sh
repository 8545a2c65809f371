#!/usr/bin/env bash
# Installs the real clients the ecosystem tests drive (crates/cli/tests/ecosystem*.rs):
#   - a Python venv at .venv-test/ with the official `elasticsearch` client, the OpenTelemetry
#     SDK with its OTLP/HTTP exporter, `fluent-logger`, and schemathesis (property-based checks
#     of the server against its own OpenAPI document, crates/cli/tests/openapi.rs);
#   - rsyslog (Debian package) when it is missing; `logger` comes with bsdutils.
# Idempotent: a second run only checks. Needs python3 with venv, and apt-get for rsyslog.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-test
packages=(elasticsearch opentelemetry-sdk opentelemetry-exporter-otlp-proto-http fluent-logger schemathesis)

if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c 'import elasticsearch, opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.http, fluent.sender, schemathesis' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
  # Compile every module once now: CPython 3.11 can fail with "AST constructor recursion depth
  # mismatch" when schemathesis's worker threads compile the same module for the first time.
  "$venv/bin/python" -m compileall -q -j 0 "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
fi

if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog >/dev/null
  else
    echo "warning: rsyslog missing and no apt-get: the rsyslog test will fail under CI=true" >&2
  fi
fi
echo "ecosystem clients ready: $venv ($("$venv/bin/python" --version)), rsyslogd: $(command -v rsyslogd || echo /usr/sbin/rsyslogd)"
