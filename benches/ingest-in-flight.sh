#!/usr/bin/env bash
# Usage: benches/ingest-in-flight.sh N [CORPUS]: a fresh default server, then
# `crowsnest ingest --in-flight N CORPUS` (default /tmp/b23/foreign.ndjson); prints the wall time
# until every event is searchable and the server's CPU seconds.
set -euo pipefail
n=$1
corpus=${2:-/tmp/b23/foreign.ndjson}
bin=${CROWSNEST_BIN:-target/release/crowsnest}
dir=$(mktemp -d)
port=$((18700 + n))
$bin server --data-dir "$dir" --listen 127.0.0.1:$port > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$dir/admin.token" ] && curl -sf -o /dev/null -H "Authorization: Bearer $(cat $dir/admin.token)" http://127.0.0.1:$port/api/v1/health && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
cpu() { awk -v t=$tick '{print ($14+$15)/t}' /proc/$pid/stat; }
c0=$(cpu); t0=$(date +%s.%N)
CROWSNEST_SERVER=http://127.0.0.1:$port $bin ingest --data-dir "$dir" --in-flight $n "$corpus" 2>&1 | tail -2
t1=$(date +%s.%N); c1=$(cpu)
echo "in-flight $n: wall $(echo "$t1 - $t0" | bc) s (until searchable), server CPU $(echo "$c1 - $c0" | bc) s"
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -rf "$dir"
