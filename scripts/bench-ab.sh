#!/usr/bin/env bash
# An A/B of two brokers (two builds, or two sets of serve flags) under
# bench-latency.sh's load, as docs/benchmarks.md reports it:
#
#   scripts/bench-ab.sh PAIRS RECORD_SIZE RATE "SERVE FLAGS A" "SERVE FLAGS B"
#
# STRATA_A and STRATA_B are the two sides' broker binaries (default
# bin/strata), CLIENT_A and CLIENT_B their bench clients' (default
# bin/strata too: set them to compare two builds of the client library),
# CLIENT_FLAGS_A and CLIENT_FLAGS_B extra `bench produce` flags of each
# side's client (e.g. --sched-slice 0, the kernel's default slice).
# Each pair runs both sides, A first in odd pairs and B first in even ones (on these VMs the position
# in a sequence of runs matters as much as the change: docs/benchmarks.md,
# "The second run of a pair is slower"), each on a fresh broker after
# SETTLE seconds (default 15), under latency_load (broker-env.sh: 1 s
# unmeasured, then 4 s worth of records, acks=leader, 64 KiB batches, a
# 1 ms linger). It prints per run the ack p99, the client's and the
# broker's CPU seconds and the broker's own p99 bucket, then per side the
# medians and the pairs in which each side had the lower p99.
#
# RATE "max" measures throughput instead: each run produces RECORDS
# (default 5,000,000) records unpaced with bench produce's default batching,
# as bench-vs-nats.sh's maximum, and the metric is the acknowledged
# records/s (higher is better) in place of the p99.
#
# How many pairs: an A/A run (both sides the same) gave medians 5.90 and
# 4.98 ms over 6 pairs (docs/benchmarks.md), so a 6-pair difference under
# about 1 ms says nothing; that section's finding took 16. Needs
# bin/strata (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
PAIRS=$1 SIZE=$2 RATE=$3 FLAGS_A=$4 FLAGS_B=$5
work=$(mktemp -d)
remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
: >"$work/A"; : >"$work/B"

# run SIDE: one measured run of SIDE, appending "metric client_cpu
# broker_cpu" to $work/SIDE.
run() {
  local side=$1 bin flags cflags STRATA_CLIENT
  if [ "$side" = A ]; then
    bin=${STRATA_A:-./bin/strata} flags=$FLAGS_A cflags=${CLIENT_FLAGS_A:-} STRATA_CLIENT=${CLIENT_A:-./bin/strata}
  else
    bin=${STRATA_B:-./bin/strata} flags=$FLAGS_B cflags=${CLIENT_FLAGS_B:-} STRATA_CLIENT=${CLIENT_B:-./bin/strata}
  fi
  rm -rf "$work/data"
  SETTLE=${SETTLE:-15} settle
  # shellcheck disable=SC2086 # the flags are words
  start_fresh "$bin" "$work/data" $flags
  local b0 b1 out cpu p
  b0=$(cpu_ms $pid)
  if [ "$RATE" = max ]; then
    # shellcheck disable=SC2086 # the flags are words
    cpu=$( { TIMEFORMAT='%U %S'; time "$STRATA_CLIENT" bench produce --topic lat --records "${RECORDS:-5000000}" --record-size "$SIZE" --acks leader $cflags 2>/dev/null >"$work/out"; } 2>&1 )
  else
    # shellcheck disable=SC2086 # the flags are words
    cpu=$( { TIMEFORMAT='%U %S'; time latency_load "$SIZE" "$RATE" $cflags >"$work/out"; } 2>&1 )
  fi
  b1=$(cpu_ms $pid)
  out=$(cat "$work/out")
  if [ "$RATE" = max ]; then
    p=$(echo "$out" | awk '/throughput/ {print $2}')
  else
    p=$(echo "$out" | p99)
  fi
  local ccpu bcpu
  ccpu=$(echo "$cpu" | awk '{printf "%.2f", $1 + $2}')
  bcpu=$(awk -v d=$((b1 - b0)) 'BEGIN {printf "%.2f", d / 1000}')
  echo "pair $i $side: $metric $p $unit, client cpu $ccpu s, broker cpu $bcpu s, broker-side p99 <= $(broker_p99 $HTTP_PORT) ms | $(echo "$out" | grep latency)"
  echo "$p $ccpu $bcpu" >>"$work/$side"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

metric=p99 unit=ms
[ "$RATE" = max ] && metric=throughput unit=records/s
echo "$PAIRS pairs at $RATE records/s of $SIZE B; A: ${STRATA_A:-bin/strata} ${FLAGS_A:-(no flags)}, client ${CLIENT_A:-bin/strata} ${CLIENT_FLAGS_A:-(no flags)}; B: ${STRATA_B:-bin/strata} ${FLAGS_B:-(no flags)}, client ${CLIENT_B:-bin/strata} ${CLIENT_FLAGS_B:-(no flags)}"
for i in $(seq "$PAIRS"); do
  if ((i % 2)); then run A; run B; else run B; run A; fi
done
for side in A B; do
  echo "MEDIAN $side: $metric $(cut -d' ' -f1 "$work/$side" | median) $unit, client cpu $(cut -d' ' -f2 "$work/$side" | median) s, broker cpu $(cut -d' ' -f3 "$work/$side" | median) s"
done
if [ "$RATE" = max ]; then
  paste -d' ' "$work/A" "$work/B" | awk '{ if ($1 > $4) a++; else if ($4 > $1) b++ } END { printf "higher throughput: A in %d pairs, B in %d\n", a, b }'
else
  paste -d' ' "$work/A" "$work/B" | awk '{ if ($1 < $4) a++; else if ($4 < $1) b++ } END { printf "lower p99: A in %d pairs, B in %d\n", a, b }'
fi
