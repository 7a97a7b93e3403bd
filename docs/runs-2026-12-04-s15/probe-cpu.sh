#!/usr/bin/env bash
# One latency run on a fresh broker with the broker's and the client's
# user and system CPU, and a 5-s CPU profile of the broker:
#   probe-cpu.sh SIZE RATE OUTPREFIX [serve flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/broker-env.sh
SIZE=$1 RATE=$2 OUT=$3; shift 3
work=$(mktemp -d); remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
settle
start_fresh ./bin/strata "$work/data" "$@"
tck=$(getconf CLK_TCK)
ut() { awk '{print $14, $15}' /proc/"$1"/stat; }
read -r bu0 bs0 < <(ut $pid)
curl -s "127.0.0.1:$HTTP_PORT/debug/pprof/profile?seconds=5" -o "$OUT.broker.pprof" &
cpid=$!
( latency_load "$SIZE" "$RATE" --cpuprofile "$OUT.client.pprof" ) > "$OUT.report" &
lpid=$!
sleep 0.3
cl=$(pgrep -f "bench produce --topic lat" | head -1)
cu0=0; cs0=0
while kill -0 $lpid 2>/dev/null; do read -r cu cs < <(ut $cl 2>/dev/null || echo "$cu $cs"); sleep 0.1; done
wait $lpid || true
read -r bu1 bs1 < <(ut $pid)
wait $cpid || true
cat "$OUT.report"
echo "broker user $(((bu1-bu0)*1000/tck)) ms sys $(((bs1-bs0)*1000/tck)) ms; client (to its last sample) user $((cu*1000/tck)) ms sys $((cs*1000/tck)) ms; broker p99 <= $(broker_p99 $HTTP_PORT) ms"
kill $pid; wait $pid 2>/dev/null || true
