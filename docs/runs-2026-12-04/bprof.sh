#!/usr/bin/env bash
# bprof.sh: fresh broker with pprof, one latency_load at 771604, broker allocs + cpu profile during the run.
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
start_fresh ./bin/strata $w/data "$@"
curl -s "http://127.0.0.1:$HTTP_PORT/debug/pprof/allocs" -o /tmp/s14/broker.allocs0
(sleep 1.5; curl -s "http://127.0.0.1:$HTTP_PORT/debug/pprof/profile?seconds=3" -o /tmp/s14/broker.cpu) &
latency_load 100 771604 | grep latency
wait %2 2>/dev/null || sleep 1
curl -s "http://127.0.0.1:$HTTP_PORT/debug/pprof/allocs" -o /tmp/s14/broker.allocs1
