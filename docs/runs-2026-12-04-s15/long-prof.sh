#!/usr/bin/env bash
# A 32-s latency run (SIZE B, default 100, at RATE, default 860881) on a fresh broker with
# two 5-s CPU profiles of the broker, early (from 3 s) and late (from 22 s).
#   long-prof.sh OUTPREFIX [RATE] [serve flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/broker-env.sh
OUT=$1 RATE=${2:-860881}; shift 2 || shift $#
work=$(mktemp -d); remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
settle
start_fresh ./bin/strata "$work/data" "$@"
(sleep 3; curl -s "127.0.0.1:$HTTP_PORT/debug/pprof/profile?seconds=5" -o "$OUT.early.pprof"; sleep 14; curl -s "127.0.0.1:$HTTP_PORT/debug/pprof/profile?seconds=5" -o "$OUT.late.pprof") &
SECONDS_MEASURED=32 latency_load "${SIZE:-100}" "$RATE" --timeline "$OUT.tsv" --timeline-window 2s | tee "$OUT.report"
wait %2 2>/dev/null || true
du -sh "$work/data"/* > "$OUT.du" 2>&1 || true
find "$work/data" -type f | wc -l >> "$OUT.du"
kill $pid; wait $pid 2>/dev/null || true
