#!/bin/bash
# The first version of wrap.sh, used for ab-cached.txt (from /tmp/exp then; a.sh ran it with
# USE=0, b.sh with USE=1).
# wrapper: args are "serve --data-dir DIR ...": write a pool of 14 x 64 MiB
# files next to DIR, sync, wait, then exec the broker (pool used if USE=1)
dir=""
prev=""
for a in "$@"; do [ "$prev" = "--data-dir" ] && dir=$a; prev=$a; done
pool=$(dirname "$dir")/pool
rm -rf "$pool"; mkdir -p "$pool"
for i in $(seq 0 13); do dd if=/dev/zero of="$pool/$i" bs=1M count=64 status=none; done
sync; sleep ${WSETTLE:-12}
if [ "${USE:-0}" = 1 ]; then export STRATA_EXP_POOL=$pool; fi
exec "$(dirname "$0")/../../bin/strata" "$@" # bin/strata built with exp-pool.patch applied
