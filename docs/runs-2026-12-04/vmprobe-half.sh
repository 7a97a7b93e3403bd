#!/usr/bin/env bash
# vmprobe.sh: a 32-s run at 860,881 100-B records/s, /proc/vmstat counters every 2 s.
set -euo pipefail
cd /work/main
export PORT=29400
. scripts/broker-env.sh
export STRATA_BROKER=127.0.0.1:$PORT
w=$(mktemp -d); remove_on_exit "$w"
settle
start_fresh ./bin/strata $w/data
(for i in $(seq 22); do
  read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat)
  echo "t=$((i*2))s utime=$ut stime=$st $(grep -E '^(pgfault|pgmajfault|pgalloc_normal|pgfree|pgsteal_kswapd|pgsteal_direct|pgscan_kswapd|pgscan_direct|compact_stall|compact_migrate_scanned|compact_free_scanned|compact_success|thp_fault_alloc|thp_fault_fallback|thp_collapse_alloc|allocstall_normal|pgmigrate_success|nr_free_pages|nr_file_pages|nr_dirty|workingset_refault_file|pgactivate|pgdeactivate|pglazyfree) ' /proc/vmstat | tr ' \n' '= ')"
  sleep 2; done) > /tmp/s14/vmprobe-half.txt &
SECONDS_MEASURED=32 latency_load 100 430440 | grep latency
wait %2 2>/dev/null || true
