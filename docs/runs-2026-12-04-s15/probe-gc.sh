#!/usr/bin/env bash
# One latency run on a fresh broker, both processes with gctrace: how many
# collections each ran in the run and their pauses.
#   probe-gc.sh SIZE RATE OUTPREFIX [serve flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/broker-env.sh
SIZE=$1 RATE=$2 OUT=$3; shift 3
work=$(mktemp -d); remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
settle
GODEBUG=gctrace=1 start_fresh ./bin/strata "$work/data" "$@"
before=$(grep -c '^gc ' "$work/data.log" || true)
GODEBUG=gctrace=1 ./bin/strata bench produce --topic lat --records $((RATE * 4)) --record-size "$SIZE" --acks leader \
    --rate "$RATE" --batch-bytes 65536 --linger 1ms --warmup 1s 2>"$OUT.client.gc" | tee "$OUT.report"
after=$(grep -c '^gc ' "$work/data.log" || true)
grep '^gc ' "$work/data.log" | tail -n +$((before + 1)) > "$OUT.broker.gc" || true
echo "broker GCs during the run: $((after - before)); client GCs: $(grep -c '^gc ' "$OUT.client.gc")"
kill $pid; wait $pid 2>/dev/null || true
