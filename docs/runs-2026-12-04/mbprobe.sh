#!/usr/bin/env bash
# mbprobe.sh: a 32-s run at 860,881 100-B records/s, snapshotting ext4's mballoc stats
# (/proc/fs/ext4/vda/mb_stats, collection switched on) every 4 s.
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
settle
start_fresh ./bin/strata $w/data
(for i in $(seq 10); do
  echo "t=${i}x4s $(tr -s ' \t\n' ' ' < /proc/fs/ext4/vda/mb_stats)"
  sleep 4; done) > /tmp/s14/mbprobe.txt &
SECONDS_MEASURED=32 latency_load 100 860881 | grep latency
wait %2 2>/dev/null || true
