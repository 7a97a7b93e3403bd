#!/usr/bin/env bash
# A 32-s latency run (SIZE B, default 100, at RATE, default 860881) on a fresh broker,
# sampling every 2 s: the machine's CPU split (/proc/stat), the broker's
# and the client's user/system ticks, the kernel threads that used CPU
# (ps), Dirty/Writeback (meminfo) and softirq counts.
#   long-sys.sh OUTPREFIX [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/broker-env.sh
OUT=$1 RATE=${2:-860881}
work=$(mktemp -d); remove_on_exit "$work"
export STRATA_BROKER=127.0.0.1:$PORT
settle
start_fresh ./bin/strata "$work/data"
(t0=$(date +%s%N); for i in $(seq 19); do
  t=$((($(date +%s%N)-t0)/1000000))
  echo "== t=${t}ms"
  head -1 /proc/stat
  echo "broker $(awk '{print "utime", $14, "stime", $15}' /proc/$pid/stat)"
  cl=$(pgrep -f "bench produce --topic lat" | head -1 || true)
  [ -n "$cl" ] && echo "client $(awk '{print "utime", $14, "stime", $15}' /proc/$cl/stat)"
  grep -E '^(Dirty|Writeback):' /proc/meminfo | tr -s ' ' | tr '\n' ' '; echo
  cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null | awk '$2 ~ /kworker|jbd2|ksoftirq|kswapd|flush|rcu|kcompact|irq/ {t[$2] += $14 + $15} END {for (k in t) if (t[k] > 0) print "kthread", k, t[k]}' | sort -k3 -n | tail -10
  grep -E 'NET_RX|BLOCK|TIMER|SCHED|RCU' /proc/softirqs | awk '{s=0; for (i=2;i<=NF;i++) s+=$i; print "softirq", $1, s}'
  sleep 2; done) > "$OUT.samples" &
SECONDS_MEASURED=32 latency_load "${SIZE:-100}" "$RATE" --timeline "$OUT.tsv" --timeline-window 2s | tee "$OUT.report"
wait %2 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
