#!/usr/bin/env bash
# Produce benchmark of Strata side by side with NATS JetStream, in one
# session on one machine, as docs/benchmarks.md reports it.
#
#   scripts/bench-vs-nats.sh [RUNS]
#
# Needs bin/strata (make build) and nats-server + nats on PATH or in
# $NATS_BIN (go install github.com/nats-io/nats-server/v2@latest and
# github.com/nats-io/natscli/nats@latest). Each configuration runs RUNS
# times (default 3), alternating Strata and NATS; compare the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
NATS_BIN=${NATS_BIN:-$HOME/.cache/strata-tools/nats}
PATH=$NATS_BIN:$PATH
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

./bin/strata serve --data-dir "$work/strata" --listen 127.0.0.1:19400 --http-listen 127.0.0.1:19401 --log-level warn &
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p 14222 -m 0 >"$work/nats.log" 2>&1 &
for _ in $(seq 100); do curl -sf 127.0.0.1:19401/readyz >/dev/null && break; sleep 0.2; done
export STRATA_BROKER=127.0.0.1:19400 NATS_URL=nats://127.0.0.1:14222

run() { # label size records
  local size=$1 n=$2 i
  for i in $(seq "$RUNS"); do
    echo "== strata size=$size run=$i"
    ./bin/strata bench produce --topic "b$size-$i" --records "$n" --record-size "$size" --acks leader 2>/dev/null
    echo "== nats size=$size run=$i"
    nats bench js pub async "bench.$size" --msgs "$n" --size "$size" --create --storage file --purge --no-progress --stream "s$size" 2>&1 | grep -E "stats|msgs/sec|Pub stats" || true
  done
}
run 1024 1000000
run 100 5000000
