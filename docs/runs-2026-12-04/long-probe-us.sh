#!/usr/bin/env bash
# long-probe-us.sh: as long-probe.sh, sampling the broker's user and system CPU ticks
# (/proc/PID/stat fields 14 and 15, exited threads included via 16 and 17 not needed: cutime is children).
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
settle
start_fresh ./bin/strata $w/data
(t0=$(date +%s%N); for i in $(seq 18); do
  read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat)
  echo "t=$((($(date +%s%N)-t0)/1000000))ms utime_ticks=$ut stime_ticks=$st"
  sleep 2; done) > /tmp/s14/probe-us.txt &
SECONDS_MEASURED=32 latency_load 100 860881 | grep latency
wait %2 2>/dev/null || true
