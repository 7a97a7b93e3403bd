#!/usr/bin/env bash
# Produce benchmark of Strata side by side with NATS JetStream, in one
# session on one machine, as docs/benchmarks.md reports it.
#
#   scripts/bench-vs-nats.sh [RUNS]
#
# SERVE_FLAGS are added to the broker's flags (e.g. "--sync-policy
# interval", the durability NATS JetStream acknowledges with).
#
# Needs bin/strata (make build) and nats-server + nats in $NATS_BIN or on
# PATH (go install github.com/nats-io/nats-server/v2@latest and
# github.com/nats-io/natscli/nats@latest). For 1 KiB and 100 B records it
# runs Strata (acks=leader, default --sync-policy always: every ack waits
# for an fsync) and NATS JetStream (file storage, async publish)
# alternately RUNS times (default 5) at full speed, then Strata alone at
# half of its median sustained rate, tuned for latency (64 KiB batches,
# 1 ms linger, after a 1 s unmeasured warm-up at that rate) once the
# broker's uploads have caught up, and prints the medians. Nothing is
# deleted between measured runs but once, NATS's data before the latency
# runs, followed by a SETTLE pause (see settle in broker-env.sh).
#
# Two rates come out of each Strata full-speed run: the acknowledgement
# rate (records / time to the last acknowledgement: what the comparison
# with NATS uses) and the sustained rate (records / time until the broker
# has also compressed and uploaded every sealed segment of the run). A
# short run acknowledges faster than the broker can tier: its segments
# wait in a backlog that a longer run would grow without bound. Half of
# the acknowledgement rate can therefore be more than the broker sustains,
# and a "latency" run there measures a queue; the latency runs take half
# the sustained rate.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
RUNS=${1:-5}
NATS_BIN=${NATS_BIN:-$HOME/.cache/strata-tools/nats}
PATH=$NATS_BIN:$PATH
work=$(mktemp -d)
remove_on_exit "$work"

./bin/strata serve --data-dir "$work/strata" --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --log-level warn ${SERVE_FLAGS:-} &
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p 14222 -m 0 >"$work/nats.log" 2>&1 &
nats_pid=$!
wait_ready
export STRATA_BROKER=127.0.0.1:$PORT NATS_URL=nats://127.0.0.1:14222

metric() { # name: the broker's sum of a counter over its labels
  curl -s 127.0.0.1:$HTTP_PORT/metrics | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {printf "%d", s}'
}

caught_up() { # seconds until every sealed segment's bytes are uploaded
  local t0 seg=$((64 << 20))
  t0=$(date +%s.%N)
  while [ $(( $(metric strata_bytes_in_total) - $(metric strata_tier_uploaded_raw_bytes_total) )) -gt "$seg" ]; do
    sleep 0.1
  done
  awk "BEGIN {printf \"%.3f\", $(date +%s.%N) - $t0}"
}

bench() { # size records
  local size=$1 n=$2 i out secs catch
  : >"$work/s$size"; : >"$work/u$size"; : >"$work/n$size"; : >"$work/h$size"
  for i in $(seq "$RUNS"); do
    quiesce
    out=$(./bin/strata bench produce --topic "b$size-$i" --records "$n" --record-size "$size" --acks leader 2>/dev/null)
    catch=$(caught_up)
    secs=$(echo "$out" | awk '/records of/ {sub("s$", "", $NF); print $NF}')
    echo "strata $size B run $i: $(echo "$out" | tr '\n' ' ')uploads caught up ${catch}s later: sustained $(awk "BEGIN {printf \"%d\", $n / ($secs + $catch)}") records/s"
    echo "$out" | awk '/^throughput/ {print $2}' >>"$work/s$size"
    awk "BEGIN {printf \"%d\\n\", $n / ($secs + $catch)}" >>"$work/u$size"
    # A stream of its own per run, not --purge: a purge deletes the last
    # run's data, and on a disk mounted with discard the fsyncs of the
    # next seconds wait behind that (see settle in broker-env.sh).
    out=$(nats bench js pub async "bench.$size.$i" --msgs "$n" --size "$size" --create --storage file --no-progress --stream "s$size-$i" 2>&1 | grep "publisher stats")
    echo "nats   $size B run $i: $out"
    echo "$out" | sed -E 's/.*stats: ([0-9,]+) msgs\/sec.*/\1/; s/,//g' >>"$work/n$size"
  done
}

quiesce() { # wait until the broker's uploads to the bucket have caught up
  local prev=-1 cur n=0
  while [ "$n" -lt 3 ]; do
    cur=$(metric strata_tier_uploaded_raw_bytes_total)
    if [ "$cur" = "$prev" ]; then n=$((n + 1)); else n=0; fi
    prev=$cur
    sleep 1
  done
}

half() { # size: Strata alone at half its median sustained rate
  local size=$1 i out smax umax nmax half
  smax=$(median <"$work/s$size")
  umax=$(median <"$work/u$size")
  nmax=$(median <"$work/n$size")
  half=$((umax / 2))
  for i in $(seq "$RUNS"); do
    # The full-speed runs leave sealed segments to compress and upload; a
    # latency run measures the broker at the given rate, not that backlog.
    quiesce
    out=$(./bin/strata bench produce --topic "h$size-$i" --records $((half * 4)) --record-size "$size" --acks leader --rate "$half" --batch-bytes 65536 --linger 1ms --warmup 1s 2>/dev/null)
    echo "strata $size B at $half records/s run $i: $(echo "$out" | tr '\n' ' ')"
    echo "$out" | p99 >>"$work/h$size"
  done
  echo "SUMMARY $size B: strata median $smax records/s acknowledged ($umax sustained), nats median $nmax records/s ($(awk "BEGIN {printf \"%.2f\", $smax/$nmax}")x); strata p99 at $half records/s: median $(median <"$work/h$size") ms"
}
bench 1024 1000000
bench 100 5000000
# The latency runs are Strata's alone: NATS, stopped, must not flush its
# page cache (it fsyncs every 2 minutes by default) under them.
kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
rm -rf "$work/nats"
settle
half 1024
half 100
