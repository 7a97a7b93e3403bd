#!/usr/bin/env bash
# A throwaway experiment of the eleventh session (docs/benchmarks.md, "Disk or VM,
# and the targets again"), kept as the record of what produced
# disk-or-vm-2026-12-03.txt: run from a checkout at /work/main with bin/strata built.
# disk vs VM: bench disk fdatasync, latency on disk-backed broker, latency on tmpfs broker,
# before and after a heavy load.
set -uo pipefail
cd /work/main
PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
SIZE=100 RATE=881212
d=/tmp/exp/data s=/dev/shm/expdata
trap 'kill $(jobs -p) 2>/dev/null; rm -rf /tmp/exp/data /dev/shm/expdata /tmp/exp/diskbench' EXIT
round() {
  local tag=$1
  mkdir -p /tmp/exp/diskbench; settle
  echo "$tag disk: $(./bin/strata bench disk --dir /tmp/exp/diskbench --bytes-per-sec 88MB --duration 5s 2>&1 | tail -1)"
  rm -rf /tmp/exp/diskbench
  for where in $d $s; do
    settle
    start_fresh ./bin/strata $where
    read -r r0 w0 < <(sched_ms $pid)
    out=$(latency_load $SIZE $RATE)
    read -r r1 w1 < <(sched_ms $pid)
    echo "$tag $where: p99 $(echo "$out" | p99) ms | $(echo "$out" | grep latency) | broker p99<=$(broker_p99 $HTTP_PORT) fsync p99<=$(fsync_p99 $HTTP_PORT) | ran $((r1-r0)) waited $((w1-w0)) ms"
    kill $pid; wait $pid 2>/dev/null; rm -rf $where
  done
}
for i in 1 2 3; do round before$i; done
settle
start_fresh ./bin/strata $d
for j in 1 2 3; do
  echo "heavy $j: $(./bin/strata bench produce --topic heavy$j --records 5000000 --record-size 100 --acks leader 2>/dev/null | grep -E 'records/s' | head -1)"
done
kill $pid; wait $pid 2>/dev/null; rm -rf $d
for i in 1 2 3; do round after$i; done
