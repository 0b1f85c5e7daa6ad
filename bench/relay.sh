#!/usr/bin/env bash
# The relay next to rsyslogd, in ONE run: 200-byte RFC 5424 messages on one
# TCP connection, octet-counted, into the relay (syslog → PUSH, raw) or
# rsyslogd (imptcp → omczmq PUSH, default settings), both connecting to
# the same bound PULL consumer: libzmq in C (a tight counting loop that
# also checks every sequence number), pyzmq, and our internal/zmq. Prints
# msg/s, the ratio to rsyslog, loss, RSS and CPU ns/msg (user+system time
# of the target over the run: steadier than msg/s on shared cores); then
# p50/p99 latency and steady RSS at a paced 50k msg/s (send timestamp in
# each message).
# N=messages per run (1,000,000), COUNT=runs per case (best shown),
# CONSUMERS=c,py,go, RATE=50000, DUR=10s, TEMPLATE=raw (rsyslog sends
# %rawmsg%, as the relay does; TEMPLATE= for omczmq's default template).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
PY=/usr/bin/python3
LIBZMQ=/usr/lib/x86_64-linux-gnu/libzmq.so.5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v rsyslogd >/dev/null || { echo "bench/relay.sh: needs rsyslogd with omczmq (make deps)" >&2; exit 1; }
"$PY" -c 'import zmq' 2>/dev/null || { echo "bench/relay.sh: needs $PY with pyzmq (make deps)" >&2; exit 1; }
[ -e "$LIBZMQ" ] || { echo "bench/relay.sh: needs $LIBZMQ (apt-get install libzmq5)" >&2; exit 1; }
cc -O2 -o "$tmp/pull" bench/relay/ref/pull.c "$LIBZMQ"
go build -o "$tmp/relay" ./relay
go build -o "$tmp/bench" ./bench/relay
"$tmp/bench" -relay "$tmp/relay" -cpull "$tmp/pull" -pypull bench/relay/pull.py -python "$PY" \
  -n "${N:-1000000}" -count "${COUNT:-3}" -consumers "${CONSUMERS:-c,py,go}" \
  -rate "${RATE:-50000}" -dur "${DUR:-10s}" -rsyslog-template "${TEMPLATE-raw}"
