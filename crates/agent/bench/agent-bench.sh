#!/usr/bin/env bash
# Agent throughput and cost: (1) a backlog of N Docker json-file lines tailed and shipped as
# fast as possible (lines per CPU-second of the agent); (2) a writer appending RATE lines/s for
# SECS seconds (the agent's CPU share and peak RSS at that rate). Uses a fake docker root (one
# container with config.v2.json), a local `crowsnest server`, and the binary in target/.
#   crates/agent/bench/agent-bench.sh [target/debug/crowsnest] [N] [RATE] [SECS]
set -euo pipefail
BIN="${1:-target/debug/crowsnest}"; N="${2:-200000}"; RATE="${3:-5000}"; SECS="${4:-30}"
WORK="$(mktemp -d)"; PORT=$((20000 + RANDOM % 20000)); URL="http://127.0.0.1:$PORT"
ID=$(printf 'b%.0s' $(seq 1 64)); CDIR="$WORK/docker/containers/$ID"; LOG="$CDIR/$ID-json.log"
mkdir -p "$CDIR"
echo "{\"ID\":\"$ID\",\"Name\":\"/bench\",\"Config\":{\"Image\":\"bench:1\",\"Labels\":{\"app\":\"bench\"}}}" >"$CDIR/config.v2.json"
cleanup() { kill "${AGENT:-}" "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN" server --listen "127.0.0.1:$PORT" --data-dir "$WORK/server" >/dev/null 2>"$WORK/server.log" & SERVER=$!
until [ -s "$WORK/server/admin.token" ] && curl -sf "$URL/api/v1/health" -H "Authorization: Bearer $(cat "$WORK/server/admin.token")" >/dev/null; do sleep 0.2; done
TOKEN=$(cat "$WORK/server/admin.token")
total() { curl -s "$URL/api/v1/search" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"query":"event.dataset:\"container.logs\"","limit":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
start_agent() {
  CROWSNEST_LOG=warn "$BIN" agent --server "$URL" --token "$TOKEN" --state-dir "$WORK/agent" \
    --docker-root "$WORK/docker" --disable cri --disable docker-events --disable audit --disable host \
    --disable falco --flush-interval-ms 200 2>>"$WORK/agent.log" & AGENT=$!
}
python3 - "$LOG" "$N" <<'PY'
import sys, datetime
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        f.write('{"log":"backlog line %d GET /api/v1/items?page=%d 200 12ms user=alice\\n","stream":"stdout","time":"%s"}\n' % (i, i % 97, t))
PY
HZ=$(getconf CLK_TCK)
start_agent; T0=$(date +%s.%N)
until [ "$(total)" -ge "$N" ]; do sleep 0.5; done
T1=$(date +%s.%N); TICKS=$(cpu_ticks $AGENT); HWM=$(hwm_kb $AGENT)
python3 -c "
n=$N; wall=$T1-$T0; cpu=$TICKS/$HZ
print(f'backlog: {n} lines in {wall:.1f} s wall ({n/wall:,.0f} lines/s), agent CPU {cpu:.1f} s -> {n/cpu:,.0f} lines per CPU-second; peak RSS {$HWM/1024:.0f} MiB')"
C0=$(cpu_ticks $AGENT)
python3 - "$LOG" "$RATE" "$SECS" <<'PY'
import sys, time, datetime
path, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.time(); i = 0
with open(path, "a", buffering=1 << 16) as f:
    while time.time() - start < secs:
        due = int((time.time() - start) * rate)
        t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        while i < due:
            f.write('{"log":"steady line %d GET /api/v1/items?page=%d 200 12ms user=alice\\n","stream":"stdout","time":"%s"}\n' % (i, i % 97, t))
            i += 1
        f.flush(); time.sleep(0.01)
print(i, file=open(path + ".count", "w"))
PY
WANT=$((N + $(cat "$LOG.count")))
until [ "$(total)" -ge "$WANT" ]; do sleep 0.5; done
C1=$(cpu_ticks $AGENT); HWM=$(hwm_kb $AGENT)
python3 -c "
cpu=($C1-$C0)/$HZ
print(f'steady: {$RATE} lines/s for {$SECS} s: agent CPU {100*cpu/$SECS:.1f}% of one core, peak RSS {$HWM/1024:.0f} MiB, all {$WANT} lines searchable')"
