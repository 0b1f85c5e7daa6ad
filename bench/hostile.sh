#!/usr/bin/env bash
# The listener core (internal/listen) on the hot path, per 200-byte
# message, each next to its reference from the same run:
#   - frames read through the core's Conn (Frame per frame; with the
#     OnWait hook the syslog input uses) vs the same frame reader on the
#     bare *net.TCPConn: what the core costs per frame;
#   - the syslog input's tcp_octet throughput with 1,000 idle connections
#     held open on the same input vs on a bare net.Listener of the same
#     process (the same descriptors and kernel sockets, without the core):
#     what an idle flood held by the core costs the connection that
#     carries the events. (Idle connections anywhere in the process cost
#     something by themselves: the last line, for information.)
# Wall time and the process's CPU time per message (cpu: less sensitive to
# neighbours). Best of COUNT runs: neighbours only slow a run down.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
COUNT=${COUNT:-3}
out=$( {
  go test -run '^$' -bench 'BenchmarkConn/' -benchtime "${N}x" -count "$COUNT" ./internal/listen
  go test -run '^$' -bench 'BenchmarkSyslogInputFlood/' -benchtime "${N}x" -count "$COUNT" ./internal/input
} )
echo "$out" | awk '
/^Benchmark/ {
  name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
  ns=$3
  if (!(name in best) || ns < best[name]) best[name]=ns
  for (i=2; i<=NF; i++) {
    if ($(i)=="allocs/op") allocs[name]=$(i-1)
    if ($(i)=="cpu-ns/msg" && (!(name in cpu) || $(i-1) < cpu[name])) cpu[name]=$(i-1)
  }
}
function row(label, ours, ref,   o, r) {
  if (!(ours in best) || !(ref in best)) { printf "%-40s missing (%s / %s)\n", label, ours, ref; bad=1; return }
  o=best[ours]; r=best[ref]
  printf "%-40s %8.1f %8.1f %7.2fx %8.1f %8.1f %7.2fx %6s\n", label, o, r, r/o, cpu[ours], cpu[ref], cpu[ref]/cpu[ours], allocs[ours]
}
END {
  printf "%-40s %8s %8s %8s %8s %8s %8s %6s\n", "per message (best of runs)", "ours ns", "ref ns", "ref/ours", "ours cpu", "ref cpu", "ref/ours", "allocs"
  row("listen.Conn vs bare TCPConn", "Conn/conn=listen", "Conn/conn=net")
  row("listen.Conn+OnWait vs bare TCPConn", "Conn/conn=listen+onwait", "Conn/conn=net")
  row("1000 idle conns: on the input vs elsewhere", "SyslogInputFlood/idle=input", "SyslogInputFlood/idle=elsewhere")
  row("(1000 idle conns elsewhere vs none)", "SyslogInputFlood/idle=elsewhere", "SyslogInputFlood/idle=none")
  exit bad
}'
