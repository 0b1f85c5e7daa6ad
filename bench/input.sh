#!/usr/bin/env bash
# Input throughput: 200-byte RFC 5424 messages over one connection/socket
# into a counting handler, every transport in ONE run, with ratios to
# tcp_octet (the rsyslog omfwd default we recommend); zmq_frames=N is the
# ZeroMQ PULL input fed by our own PUSH. N=messages per case.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-300000}
COUNT=${COUNT:-3} # best of COUNT: neighbours on the shared cores only ever slow a run down
out=$(go test -run '^$' -bench 'Benchmark(SyslogInput|ZMQInput)' -benchtime "${N}x" -count "$COUNT" ./internal/input)
echo "$out" | awk '
/^Benchmark(SyslogInput|ZMQInput)\// {
  name=$1; sub(/^BenchmarkSyslogInput\//, "", name); sub(/^BenchmarkZMQInput\//, "zmq_", name); sub(/-[0-9]+$/, "", name)
  for (i=2; i<=NF; i++) {
    if ($(i)=="msg/s" && $(i-1) > rate[name]) rate[name]=$(i-1)
    if ($(i)=="allocs/op") allocs[name]=$(i-1)
    if ($(i)=="lost/op") lost[name]=$(i-1)
  }
  if (!(name in seen)) { seen[name]=1; order[++n]=name }
}
END {
  if (!("tcp_octet" in rate)) { print "no results"; exit 1 }
  base=rate["tcp_octet"]
  printf "%-12s %14s %10s %10s %8s\n", "input", "best msg/s", "vs tcp", "allocs/msg", "lost"
  for (i=1; i<=n; i++) {
    k=order[i]
    printf "%-12s %14.0f %9.2fx %10s %8s\n", k, rate[k], rate[k]/base, allocs[k], (k in lost) ? lost[k] : "-"
  }
}'
