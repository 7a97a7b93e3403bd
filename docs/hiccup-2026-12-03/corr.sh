#!/usr/bin/env bash
# Eleventh session throwaway (docs/benchmarks.md, "Disk or VM, and the targets again"):
# expects the meter (main.go.txt) built as /tmp/hic/hic and bin/strata built.
# p99 of a latency run against the stalls a third process (hic) sees meanwhile.
cd /work/main
PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
d=/tmp/hic/data
trap 'kill $(jobs -p) 2>/dev/null; rm -rf /tmp/hic/data' EXIT
for i in $(seq ${RUNS:-10}); do
  rm -rf $d; settle
  start_fresh ./bin/strata $d
  /tmp/hic/hic -d 5s > /tmp/hic/h.$i &
  hp=$!
  out=$(latency_load 100 674763)
  wait $hp
  echo "run $i: p99 $(echo "$out" | p99) ms, broker p99<=$(broker_p99 $HTTP_PORT) | $(cat /tmp/hic/h.$i)"
  kill $pid; wait $pid 2>/dev/null
done
