#!/usr/bin/env bash
# Strata's acks=leader latency against the machine's floor, in one session,
# as docs/benchmarks.md reports it:
#
#   scripts/bench-floor.sh RUNS RECORD_SIZE RATE [strata serve flags...]
#
# Each round runs four things, in an order rotated from round to round,
# each after a SETTLE pause
# (see settle in broker-env.sh), at RATE records/s of RECORD_SIZE bytes
# batched as bench-latency.sh batches them (64 KiB batches, 1 ms linger:
# one request per millisecond, or more often when 64 KiB fill sooner):
#
#   floor-fsync   strata bench floor: the minimal server (gRPC, write,
#                 group fdatasync in the data directory's file system)
#   floor-nosync  the same without fdatasync: the transport alone
#   floor-broker  strata bench floor --against broker: a fresh Strata
#                 broker (embedded defaults plus the serve flags given)
#                 sent the same requests as record batches, no client library
#   bench         strata bench produce against a fresh broker, as
#                 bench-latency.sh runs it: the whole of Strata
#
# and prints each run's record latency p99, then the median of each. Needs
# bin/strata (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/broker-env.sh
RUNS=$1 SIZE=$2 RATE=$3
shift 3
work=$(mktemp -d)
remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
# Requests as the producer would send them: bytes per second with about 8
# bytes of framing a record, in batches of at most 64 KiB, at least one a
# millisecond (the linger).
read -r REQ_RATE REQ_BYTES < <(awk -v r="$RATE" -v s="$SIZE" 'BEGIN {
  bps = r * (s + 8); n = bps / 65536; if (n < 1000) n = 1000; printf "%d %d\n", n, bps / n }')
FLOOR_ARGS="--rate $REQ_RATE --request-bytes $REQ_BYTES --duration 4s --warmup 1s"

serve() { start_fresh ./bin/strata "$work/data" "$@"; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$work/data"; }
# record_p99: the record latency p99 (ms) of a bench floor or bench
# produce report on stdin.
record_p99() { sed -nE 's/^(record|ack) latency.* p99 ([0-9.]+)ms.*/\2/p'; }

echo "$RUNS rounds at $RATE records/s of $SIZE B: requests of $REQ_BYTES B at $REQ_RATE/s; serve flags: ${*:-none}"
kinds=(floor-fsync floor-nosync floor-broker bench)
for kind in "${kinds[@]}"; do : >"$work/$kind"; done
for i in $(seq "$RUNS"); do
  # Each round starts one kind later: a run right after another broker's
  # run is often slower than the first of a round (seen in A/B pairs),
  # so no kind always has the same place.
  for k in "${!kinds[@]}"; do
    kind=${kinds[$(( (i - 1 + k) % ${#kinds[@]} ))]}
    settle
    case $kind in
      floor-fsync) out=$(./bin/strata bench floor $FLOOR_ARGS --dir "$work/floor") ;;
      floor-nosync) out=$(./bin/strata bench floor $FLOOR_ARGS --fsync=false) ;;
      floor-broker)
        serve "$@"
        out=$(./bin/strata bench floor $FLOOR_ARGS --against broker --topic lat --record-size "$SIZE")
        stop ;;
      bench)
        serve "$@"
        out=$(latency_load "$SIZE" "$RATE")
        stop ;;
    esac
    p=$(echo "$out" | record_p99)
    echo "$p" >>"$work/$kind"
    echo "round $i $kind: p99 $p ms | $(echo "$out" | tr '\n' ' ')"
  done
done
for kind in "${kinds[@]}"; do
  echo "MEDIAN p99 $kind: $(median <"$work/$kind") ms (runs: $(tr '\n' ' ' <"$work/$kind"))"
done
