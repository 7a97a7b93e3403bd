#!/usr/bin/env bash
# Catch-up reads after production: on a fresh broker (BIN, serve flags
# after it), produce RECORDS records of 1 KiB unpaced, wait 5 s (the
# sealed segments are uploaded, and with the page-cache drop out of the
# cache), then bench consume them all from the earliest offset, twice.
#   consume-after.sh BIN RECORDS [serve flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/broker-env.sh
BIN=$1 N=$2; shift 2
work=$(mktemp -d); remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
settle
start_fresh "$BIN" "$work/data" "$@"
./bin/strata bench produce --topic cu --records "$N" --record-size 1024 --acks leader 2>/dev/null | grep -E "throughput"
sleep 5
echo "page cache: $(grep -E '^Cached' /proc/meminfo | tr -s ' ')"
for i in 1 2; do ./bin/strata bench consume --topic cu --records "$N" 2>/dev/null | grep -E "throughput|latency" | tr '\n' ' '; echo; done
kill $pid; wait $pid 2>/dev/null || true
