#!/usr/bin/env bash
# gccount.sh: one fresh broker, then each client once under gctrace.
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
start_fresh ./bin/strata $w/data
for c in "$@"; do
  n=$(basename $c)
  GODEBUG=gctrace=1 $c bench produce --topic lat$RANDOM --records 2699052 --record-size 100 --acks leader --rate 674763 --batch-bytes 65536 --linger 1ms --warmup 1s 2>/tmp/s14/gc.$n.txt | grep latency
  echo "$n: $(grep -c '^gc ' /tmp/s14/gc.$n.txt) GCs"; grep '^gc ' /tmp/s14/gc.$n.txt | tail -1
done
