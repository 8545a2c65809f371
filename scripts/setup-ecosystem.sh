#!/usr/bin/env bash
# Installs the real clients the ecosystem tests drive (crates/cli/tests/ecosystem*.rs):
#   - a Python venv at .venv-test/ with the official `elasticsearch` client, the OpenTelemetry
#     SDK with its OTLP/HTTP exporter, `fluent-logger`, schemathesis (property-based checks
#     of the server against its own OpenAPI document, crates/cli/tests/openapi.rs) and aiosmtpd
#     (the SMTP server with STARTTLS that email notifications go to, crates/cli/tests/notify.rs),
#     numpy and river (the median/MAD and EWMA references the rate baselines are checked against,
#     crates/detect/tests/rate_reference.rs), and DuckDB and chDB (the embedded engines
#     `crowsnest bench peers` loads the same corpus into, scripts/peers.py);
#   - rsyslog (Debian package) when it is missing; `logger` comes with bsdutils;
#   - syslog-ng, unpacked privately into .venv-test/syslog-ng/prefix: Debian's syslog-ng
#     conflicts with rsyslog, so only `syslog-ng-core` is downloaded and `dpkg -x`'d, and only
#     its library dependencies are installed (the test runs it with LD_LIBRARY_PATH and its
#     own module path; nothing of it is registered with dpkg or started as a service).
# Idempotent: a second run only checks. Needs python3 with venv, and apt-get for rsyslog and
# syslog-ng.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-test
packages=(elasticsearch opentelemetry-sdk opentelemetry-exporter-otlp-proto-http fluent-logger schemathesis aiosmtpd numpy river duckdb chdb)

if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c 'import elasticsearch, opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.http, fluent.sender, schemathesis, aiosmtpd, numpy, river, duckdb, chdb' 2>/dev/null; then
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
sng_dir=$venv/syslog-ng
sng_bin=$sng_dir/prefix/usr/sbin/syslog-ng
sng_runs() { LD_LIBRARY_PATH="$sng_dir/prefix/usr/lib/syslog-ng" "$sng_bin" --version >/dev/null 2>&1; }
if ! sng_runs; then
  if command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$sng_dir"
    if ! ls "$sng_dir"/syslog-ng-core_*.deb >/dev/null 2>&1; then
      # `apt-get download` writes to the current directory; as root it warns that the _apt
      # user cannot write there, which is harmless.
      (cd "$sng_dir" && { apt-get download -qq syslog-ng-core 2>/dev/null ||
        { apt-get update -qq && apt-get download -qq syslog-ng-core 2>/dev/null; }; })
    fi
    # The plain `Depends:` of syslog-ng-core are libraries (plus lsb-base); its conflicts
    # (rsyslog, other syslog daemons) are `Conflicts:` lines and are never installed.
    missing_deps=()
    for dep in $(apt-cache depends syslog-ng-core | awk '/^  Depends: [^<]/ {print $2}'); do
      dpkg -s "$dep" >/dev/null 2>&1 || missing_deps+=("$dep")
    done
    if [ ${#missing_deps[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_deps[@]}" >/dev/null
    fi
    rm -rf "$sng_dir/prefix"
    dpkg -x "$(ls "$sng_dir"/syslog-ng-core_*.deb | head -n 1)" "$sng_dir/prefix"
    sng_runs || echo "warning: the unpacked syslog-ng does not run: the syslog-ng test will fail under CI=true" >&2
  else
    echo "warning: syslog-ng missing and no apt-get: the syslog-ng test will fail under CI=true" >&2
  fi
fi
echo "ecosystem clients ready: $venv ($("$venv/bin/python" --version)), rsyslogd: $(command -v rsyslogd || echo /usr/sbin/rsyslogd), syslog-ng: $sng_bin"
