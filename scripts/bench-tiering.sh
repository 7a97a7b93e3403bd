#!/usr/bin/env bash
# Tiered-storage benchmark against a real MinIO on loopback, as
# docs/benchmarks.md reports it:
#
#   scripts/bench-tiering.sh [RECORDS] [RUNS]
#
# Produces RECORDS (default 2000000) 1 KiB JSON-like records to a topic
# whose local retention evicts every uploaded segment, measures how fast
# uploads keep up, restarts the broker (empty frame cache), then consumes
# everything from offset 0 RUNS times (default 3) - every read a cold read
# from MinIO - and reports records/s, MB/s and object-store requests per
# GiB from the broker's own metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
RECORDS=${1:-2000000}
RUNS=${2:-3}
work=$(mktemp -d)
remove_on_exit "$work"
. scripts/minio.sh

export STRATA_BROKER=127.0.0.1:$PORT
serve() {
  ./bin/strata serve --data-dir "$work/strata" --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --log-level warn \
    --object-store "s3://bench/strata?endpoint=http://127.0.0.1:19900&region=us-east-1&path-style=true" &
  broker=$!
  wait_ready
}
metric() { curl -s 127.0.0.1:$HTTP_PORT/metrics | awk -v m="$1" '$1 == m {print $2}' | head -1; }
status() { ./bin/strata tier status bench; }

serve
./bin/strata topic create bench --partitions 1 --config local.retention.bytes=0
start=$(date +%s.%N)
./bin/strata bench produce --topic bench --records "$RECORDS" --record-size 1024 --payload json --acks leader 2>/dev/null
# Wait until every sealed segment is uploaded (the active one stays local).
while ! status | awk 'NR==2 && $NF == "0s" {ok=1} END {exit !ok}'; do sleep 0.5; done
up=$(date +%s.%N)
status
puts=$(metric 'strata_objstore_requests_total{op="put"}')
raw=$(metric 'strata_tier_uploaded_raw_bytes_total{topic="bench"}')
stored=$(metric 'strata_tier_uploaded_bytes_total{topic="bench"}')
echo "UPLOAD: $(awk "BEGIN {printf \"%.1f MB/s of record batches from produce start until uploads caught up (%.1f s)\", $raw/($up-$start)/1e6, $up-$start}")"
echo "UPLOAD: $puts PUTs for $(awk "BEGIN {printf \"%.0f\", $raw/1048576}") MiB of segment data = 1 PUT per $(awk "BEGIN {printf \"%.1f\", $raw/1048576/$puts}") MiB; compression ratio $(awk "BEGIN {printf \"%.2f\", $raw/$stored}")"

remote_end=$(./bin/strata topic describe bench | awk '$1 == "0" {print $5}')
for i in $(seq "$RUNS"); do
  kill "$broker"; wait "$broker" || true
  serve   # an empty frame cache: every read below is a cold read
  gets0=$(metric 'strata_objstore_requests_total{op="get_range"}'); gets0=${gets0:-0}
  bytes0=$(metric 'strata_objstore_bytes_total{op="get_range"}'); bytes0=${bytes0:-0}
  echo "== cold read run $i"
  ./bin/strata bench consume --topic bench --records "$((remote_end - 1))" 2>/dev/null
  gets=$(metric 'strata_objstore_requests_total{op="get_range"}')
  got=$(metric 'strata_objstore_bytes_total{op="get_range"}')
  echo "COLD: $((${gets%.*} - ${gets0%.*})) range GETs for $(awk "BEGIN {printf \"%.0f\", ($got-$bytes0)/1048576}") MiB fetched = 1 GET per $(awk "BEGIN {printf \"%.2f\", ($got-$bytes0)/1048576/($gets-$gets0)}") MiB"
done
