# Sourced by the benchmark scripts (after cd to the repository root): the
# broker's ports and the helpers they share.
#
# The broker listens on PORT (gRPC, default 19400) and PORT+1 (HTTP); a
# broker already answering there would be measured instead: refuse.
PORT=${PORT:-19400}
HTTP_PORT=$((PORT + 1))
if curl -sf "127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; then
  echo "something already serves 127.0.0.1:$HTTP_PORT; set PORT to a free port" >&2
  exit 1
fi

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# p99: the ack latency p99 (ms) of the `strata bench produce` report on
# stdin.
p99() { awk '/latency/ {gsub("ms,","",$6); print $6}'; }
