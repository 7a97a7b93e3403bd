#!/bin/bash
# wrapper: args are "serve --data-dir DIR ...". Writes 14 x 64 MiB files
# next to DIR (dd through the page cache, or MODE=direct: O_DIRECT), and
# MODE=falloc also fallocates 14 more; syncs, waits, then execs the broker,
# whose segments come from the pool if USE names it (dd or falloc).
dir=""; prev=""
for a in "$@"; do [ "$prev" = "--data-dir" ] && dir=$a; prev=$a; done
base=$(dirname "$dir")
rm -rf "$base/pool-dd" "$base/pool-falloc"; mkdir -p "$base/pool-dd" "$base/pool-falloc"
for i in $(seq 0 13); do
  if [ "${MODE:-}" = direct ]; then dd if=/dev/zero of="$base/pool-dd/$i" bs=1M count=64 oflag=direct status=none
  else dd if=/dev/zero of="$base/pool-dd/$i" bs=1M count=64 status=none; fi
  fallocate -l 64MiB "$base/pool-falloc/$i"
done
sync; sleep ${WSETTLE:-12}
if [ -n "${USE:-}" ]; then export STRATA_EXP_POOL=$base/pool-$USE; fi
exec "$(dirname "$0")/../../bin/strata" "$@" # bin/strata built with exp-pool.patch applied
