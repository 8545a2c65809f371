#!/usr/bin/env bash
# CPU the server alone spends per event, HTTP body to searchable.
#   benches/server-cpu.sh [EVENTS]        (default 100000)
# Starts `crowsnest server` on a temporary data directory and a loopback port, writes a corpus
# of EVENTS generated events (`crowsnest bench --corpus-out`), sends it with `crowsnest ingest`
# (4 MiB bodies), waits until a search counts every event, and reads the server's user + system
# CPU time from /proc before and after. The sender and the searches are other processes, so
# their CPU is not counted. Stops only the server it started.
set -euo pipefail
events="${1:-100000}"
bin="${CROWSNEST_BIN:-target/release/crowsnest}"
port="${CROWSNEST_BENCH_PORT:-18479}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
"$bin" bench --events "$events" --corpus-out "$work/corpus.ndjson" >/dev/null
bytes=$(stat -c %s "$work/corpus.ndjson")
"$bin" server --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/data/admin.token" ] && break; sleep 0.1; done
token="$(cat "$work/data/admin.token")"
url="http://127.0.0.1:$port"
until curl -sf "$url/api/v1/health" -H "Authorization: Bearer $token" >/dev/null; do sleep 0.1; done
cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
ticks=$(getconf CLK_TCK)
before=$(cpu)
start=$(date +%s.%N)
"$bin" ingest --server "$url" --token "$token" "$work/corpus.ndjson" >/dev/null
# Alerts are stored as events too, so wait for at least as many as were sent.
while :; do
    total=$(curl -sf "$url/api/v1/search" -H "Authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"query":"*","limit":1}' |
        sed -n 's/.*"total":\([0-9]*\).*/\1/p')
    [ "${total:-0}" -ge "$events" ] && break
    sleep 0.1
done
after=$(cpu)
end=$(date +%s.%N)
awk -v c0="$before" -v c1="$after" -v t="$ticks" -v n="$events" -v b="$bytes" \
    -v s="$start" -v e="$end" 'BEGIN {
    cpu = (c1 - c0) / t; wall = e - s
    printf "| %d events | %.1f MB | server CPU %.2f s | %.1f µs/event | %.1f MB per server CPU-second | wall %.2f s, %.0f events/s |\n",
        n, b / 1e6, cpu, cpu / n * 1e6, b / 1e6 / cpu, wall, n / wall
}'
