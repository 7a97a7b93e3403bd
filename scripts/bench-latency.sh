#!/usr/bin/env bash
# Acknowledgement latency of one producer at a fixed rate, each run on a
# fresh broker (embedded defaults plus any serve flags given), as
# docs/benchmarks.md reports it:
#
#   scripts/bench-latency.sh RUNS RECORD_SIZE RATE [strata serve flags...]
#
# Each run produces for 1 s unmeasured (WARMUP), then 4 s worth of records
# (RATE x 4; SECONDS_MEASURED overrides the 4) with acks=leader, 64 KiB
# batches and a 1 ms linger (BATCH_BYTES, LINGER override), then prints
# the bench report and the broker's own p99 (request received to ack sent,
# the bucket bound of strata_produce_latency_seconds, warm-up included) and
# that of its group-commit fsyncs (strata_log_fsync_seconds);
# how long the broker's threads waited for a CPU during the run (a VM's
# scheduler can keep runnable threads waiting while a CPU is idle); the
# last line is the median p99 over the runs. Needs
# bin/strata (make build). Before each run it removes the previous run's
# data and waits SETTLE seconds (default 20; see settle in broker-env.sh)
# for the disk to finish discarding it. STRATA=path runs another build's broker (for an
# A/B in one session), TIMELINE=prefix writes run i's --timeline to
# prefix.i.tsv (windows of TIMELINE_WINDOW, default 100ms).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
RUNS=$1 SIZE=$2 RATE=$3
shift 3
work=$(mktemp -d)
remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
: >"$work/p99"
for i in $(seq "$RUNS"); do
  rm -rf "$work/data"
  settle
  start_fresh "${STRATA:-./bin/strata}" "$work/data" "$@"
  read -r ran0 wait0 < <(sched_ms $pid)
  t0=$(date +%s%N)
  out=$(latency_load "$SIZE" "$RATE" ${TIMELINE:+--timeline "$TIMELINE.$i.tsv" --timeline-window "${TIMELINE_WINDOW:-100ms}"})
  read -r ran1 wait1 < <(sched_ms $pid)
  t1=$(date +%s%N)
  echo "run $i: $(echo "$out" | tr '\n' ' ')broker-side p99 <= $(broker_p99 $HTTP_PORT) ms (fsync p99 <= $(fsync_p99 $HTTP_PORT) ms); in $(((t1 - t0) / 1000000)) ms the broker used $((ran1 - ran0)) ms of CPU and its live threads waited $((wait1 - wait0)) ms for one"
  echo "$out" | p99 >>"$work/p99"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "MEDIAN p99 $SIZE B at $RATE records/s ($*): $(median <"$work/p99") ms"
