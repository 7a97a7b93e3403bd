# Sourced by the benchmark scripts (after cd to the repository root): the
# broker's ports and the helpers they share.
#
# The broker listens on PORT (gRPC, default 19400) and PORT+1 (HTTP); a
# broker already answering there would be measured instead: refuse.
# A signal (^C, a closed pipe such as `| head -1`) exits through the
# script's EXIT trap, which stops the broker and removes its data (a
# benchmark's data directory is about 1 GB): without these, bash dies of
# the signal and skips it.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE

PORT=${PORT:-19400}
HTTP_PORT=$((PORT + 1))
if curl -sf "127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; then
  echo "something already serves 127.0.0.1:$HTTP_PORT; set PORT to a free port" >&2
  exit 1
fi

# wait_ready: wait up to READY_TRIES x 0.2 s (default 100: 20 s) for the
# broker on HTTP_PORT to answer /readyz.
wait_ready() { for _ in $(seq ${READY_TRIES:-100}); do curl -sf 127.0.0.1:$HTTP_PORT/readyz >/dev/null && break; sleep 0.2; done; }

# start_fresh BIN DIR [serve flags...]: start `BIN serve` on an empty data
# directory DIR (removed first; its log in DIR.log) on PORT and HTTP_PORT,
# set pid, and wait until it is ready.
start_fresh() {
  local bin=$1 dir=$2
  shift 2
  rm -rf "$dir"
  "$bin" serve --data-dir "$dir" --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --log-level warn "$@" >"$dir.log" 2>&1 &
  pid=$!
  wait_ready
}

# latency_load SIZE RATE [bench produce flags...]: the latency benchmarks'
# load on topic lat, its report on stdout: WARMUP (default 1s) unmeasured,
# then SECONDS_MEASURED (default 4) s worth of records (RATE x that) of SIZE
# bytes at RATE records/s,
# acks=leader, in batches of BATCH_BYTES (default 65536) with a LINGER
# (default 1ms), with the client STRATA_CLIENT (default ./bin/strata).
latency_load() {
  local size=$1 rate=$2
  shift 2
  "${STRATA_CLIENT:-./bin/strata}" bench produce --topic lat --records $((rate * ${SECONDS_MEASURED:-4})) --record-size "$size" --acks leader \
    --rate "$rate" --batch-bytes "${BATCH_BYTES:-65536}" --linger "${LINGER:-1ms}" --warmup "${WARMUP:-1s}" "$@" 2>/dev/null
}

# remove_on_exit DIR: set the script's EXIT trap: stop its background jobs
# (the broker, MinIO, NATS) and remove DIR (its data, about 1 GB). kill
# fails when no job is left, and under set -e a failing command ends the
# trap before the rm: hence the || true.
remove_on_exit() { trap "kill \$(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf '$1'" EXIT; }

# settle: sync, then wait SETTLE seconds (default 20) before a measured
# run. On the benchmark VM's disk (ext4 mounted with `discard`) an
# fdatasync waits behind the discard of blocks freed just before:
# `strata bench disk --bytes-per-sec 50MB` right after deleting 2 GB
# had a byte-latency p99 of 130-179 ms in three runs of four, 20 s later
# 1.5-9.9 ms (docs/benchmarks.md, "The disk under acks=leader"). A run
# right after the previous run's data was removed measures that, not
# the broker.
settle() { sync; sleep "${SETTLE:-20}"; }

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# p99: the ack latency p99 (ms) of the `strata bench produce` report on
# stdin.
p99() { awk '/latency/ {gsub("ms,","",$6); print $6}'; }

# hist_p99 PORT SERIES: the upper bound (ms) of the histogram bucket
# holding the 99th percentile of SERIES (a histogram's name and the start
# of its labels, e.g. 'strata_produce_latency_seconds_bucket{acks="leader"')
# on the broker whose HTTP listener is on PORT, since it started.
hist_p99() {
  curl -sf "127.0.0.1:$1/metrics" | awk -v series="$2" '
    index($0, series) == 1 {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; les[n] = le; cum[n] = $2 }
    END { if (n == 0 || cum[n] == 0) { print "none"; exit }
      total = cum[n]; for (i = 1; i <= n; i++) if (cum[i] >= 0.99 * total) { if (les[i] == "+Inf") print "+Inf"; else printf "%.1f\n", les[i] * 1000; exit } }'
}

# broker_p99 PORT: hist_p99 of strata_produce_latency_seconds (acks=leader):
# the time from receiving a produce request to acknowledging it.
broker_p99() { hist_p99 "$1" 'strata_produce_latency_seconds_bucket{acks="leader"'; }

# fsync_p99 PORT: hist_p99 of strata_log_fsync_seconds, the group-commit
# fsyncs that acks=leader waits for under --sync-policy always.
fsync_p99() { hist_p99 "$1" 'strata_log_fsync_seconds_bucket{'; }

# cpu_ms PID: the CPU time (ms, user + system) process PID has used since
# it started, its exited threads included (/proc/PID/stat; summing
# /proc/PID/task/*/schedstat instead misses the compression threads of
# tiering, which come and go: 1.9 s against 3.4 s in one latency_load,
# docs/benchmarks.md, thirteenth session).
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{printf "%.0f\n", ($14 + $15) * 1000 / t}' /proc/"$1"/stat; }

# sched_ms PID: "RAN WAITED", the time (ms) process PID has spent on a CPU
# (cpu_ms) and its threads have spent runnable but waiting for one, the
# latter summed over its live threads (from /proc/PID/task/*/schedstat:
# the waits of threads that have exited are not counted).
sched_ms() {
  local waited
  waited=$(cat /proc/"$1"/task/[0-9]*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f\n", w / 1e6}')
  echo "$(cpu_ms "$1") $waited"
}
