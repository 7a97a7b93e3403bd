#!/usr/bin/env bash
# long-probe.sh: one 32-s latency_load at 860,881 100-B records/s on a fresh broker, sampling every 2 s
# the broker's CPU (cpu_ms), bytes in, tier uploaded raw bytes, fsync count and sum, and /proc/meminfo Dirty.
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
settle
start_fresh ./bin/strata $w/data
m() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v k="$1" '$1 ~ "^"k {s+=$2} END {printf "%.0f", s}'; }
(t0=$(date +%s%N); for i in $(seq 20); do
  echo "t=$((($(date +%s%N)-t0)/1000000))ms cpu=$(cpu_ms $pid)ms in=$(m strata_bytes_in_total) up_raw=$(m strata_tier_uploaded_raw_bytes_total) fsyncs=$(m strata_log_fsync_seconds_count) fsync_sum_ms=$(curl -s http://127.0.0.1:$HTTP_PORT/metrics | awk '$1 ~ /^strata_log_fsync_seconds_sum/ {s+=$2} END {printf "%.0f", s*1000}') dirty=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)kB wb=$(awk '/^Writeback:/ {print $2}' /proc/meminfo)kB"
  sleep 2; done) > /tmp/s14/probe.txt &
SECONDS_MEASURED=32 latency_load 100 860881 --timeline /tmp/s14/probe.tsv --timeline-window 2s
wait %2 2>/dev/null || true
