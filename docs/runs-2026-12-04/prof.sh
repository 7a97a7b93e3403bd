#!/usr/bin/env bash
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
start_fresh ./bin/strata $w/data
bin/strata bench produce --topic lat --records 3086416 --record-size 100 --acks leader --rate 771604 --batch-bytes 65536 --linger 1ms --warmup 1s --memprofile /tmp/s14/client.allocs --cpuprofile /tmp/s14/client.cpu 2>/dev/null | grep latency
