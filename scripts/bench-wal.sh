#!/usr/bin/env bash
# acks=all on the object-store WAL against a real MinIO on loopback, as
# docs/benchmarks.md reports it (issue 5):
#
#   scripts/bench-wal.sh [RUNS]
#
# One broker (embedded etcd, --wal on, default 10 ms / 4 MiB flushes)
# writing to MinIO. RUNS times each (default 3): 1 KiB records with
# acks=all at 20 MB/s (20,000 records/s for 10 s) to a topic of 1 and of
# 100 partitions (records spread round-robin, so every flush carries all
# 100), reporting acknowledgement latency and the WAL PUTs per second from
# the broker's metrics; then acks=all as fast as it goes (1 partition).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
RUNS=${1:-3}
work=$(mktemp -d)
remove_on_exit "$work"
. scripts/minio.sh

export STRATA_BROKER=127.0.0.1:$PORT
./bin/strata serve --data-dir "$work/strata" --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --log-level warn \
  --object-store "s3://bench/strata?endpoint=http://127.0.0.1:19900&region=us-east-1&path-style=true" --wal on ${SERVE_FLAGS:-} &
wait_ready
metric() { curl -s 127.0.0.1:$HTTP_PORT/metrics | awk -v m="$1" '$1 == m {print $2}' | head -1; }

for parts in 1 100; do
  : >"$work/p99-$parts"; : >"$work/puts-$parts"
  for i in $(seq "$RUNS"); do
    ./bin/strata topic create "w$parts-$i" --partitions "$parts" >/dev/null
    w0=$(metric strata_wal_objects_total); w0=${w0:-0}
    t0=$(date +%s.%N)
    out=$(./bin/strata bench produce --topic "w$parts-$i" --records 200000 --record-size 1024 --acks all --rate 20000 --round-robin 2>/dev/null)
    t1=$(date +%s.%N)
    w1=$(metric strata_wal_objects_total)
    puts=$(awk "BEGIN {printf \"%.1f\", ($w1-$w0)/($t1-$t0)}")
    echo "acks=all 20 MB/s, $parts partition(s), run $i: $(echo "$out" | tr '\n' ' ') WAL PUTs/s: $puts"
    echo "$out" | p99 >>"$work/p99-$parts"
    echo "$puts" >>"$work/puts-$parts"
  done
  echo "SUMMARY $parts partition(s): acks=all p99 at 20 MB/s median $(median <"$work/p99-$parts") ms; WAL PUTs/s median $(median <"$work/puts-$parts")"
done
echo "WAL PUT latency histogram (seconds) and commit latency:"
curl -s 127.0.0.1:$HTTP_PORT/metrics | grep -E '^strata_wal_(put|commit)_latency_seconds_(sum|count)'
: >"$work/max"
for i in $(seq "$RUNS"); do
  out=$(./bin/strata bench produce --topic "max-$i" --partitions 1 --records 300000 --record-size 1024 --acks all 2>/dev/null)
  echo "acks=all full speed, 1 partition, run $i: $(echo "$out" | tr '\n' ' ')"
  echo "$out" | awk '/^throughput/ {print $4}' >>"$work/max"
done
echo "SUMMARY acks=all full speed: median $(median <"$work/max") MB/s"
