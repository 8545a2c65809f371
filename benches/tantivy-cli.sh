#!/usr/bin/env bash
# Reference measurement: tantivy-cli indexing the same corpus `crowsnest bench` ingests.
#   cargo install tantivy-cli          (builds here without --locked)
#   benches/tantivy-cli.sh 1000000
# Each event is indexed as one JSON field (default tokenizer, positions, stored; lz4 docstore,
# tantivy-cli is built without zstd): the closest
# thing tantivy-cli offers to "index arbitrary JSON events". It reads a local file with no HTTP,
# no WAL and no normalization, so it bounds what the index alone costs.
set -euo pipefail
events="${1:-1000000}"
bin="${CROWSNEST_BIN:-target/release/crowsnest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" bench --events "$events" --corpus-out "$work/corpus.ndjson"
sed 's/^/{"event":/; s/$/}/' "$work/corpus.ndjson" > "$work/docs.json"
mkdir "$work/index"
cat > "$work/index/meta.json" <<'JSON'
{"index_settings":{"docstore_compression":"lz4","docstore_blocksize":16384},
 "segments":[],
 "schema":[{"name":"event","type":"json_object","options":{"stored":true,"fast":false,"expand_dots_enabled":false,
   "indexing":{"record":"position","fieldnorms":true,"tokenizer":"default"}}}],
 "opstamp":0}
JSON
raw=$(stat -c %s "$work/corpus.ndjson")
start=$(date +%s.%N)
tantivy index -i "$work/index" -f "$work/docs.json" -t 2 > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
end=$(date +%s.%N)
size=$(du -sb "$work/index" | cut -f1)
awk -v raw="$raw" -v size="$size" -v s="$start" -v e="$end" -v n="$events" 'BEGIN {
  t = e - s
  printf "| tantivy-cli index (2 threads) | %d events | %.1f MB raw | %.1f s | %.0f events/s | %.1f MB/s | index %.1f MB (%.3f of raw) |\n", n, raw/1e6, t, n/t, raw/t/1e6, size/1e6, size/raw
}'
