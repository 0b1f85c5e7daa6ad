#!/usr/bin/env bash
# The disk spool (#10) in ONE run: 200-byte RFC 5424 messages on one TCP
# connection into
#   relay              syslog → PUSH (no spool)                 the base
#   relay-spool        syslog → disk spool (fsync always) → PUSH
#   rsyslog-disk       rsyslog imptcp → Disk action queue → omczmq
#   rsyslog-disk-sync  the same with syncQueueFiles="on" checkpointInterval="1"
# each into the same bound libzmq C PULL (bench/relay/ref/pull.c). Goals:
# relay-spool ≥ 1M msg/s with every batch fsync'd before it counts as
# durable, and ≥ 70% of the relay without a spool. (For plain syslog the
# spooled output's Write returns only once the batch is fsync'd, so one
# connection waits one fdatasync per read batch of up to 4096 events: the
# floor is about 4096 / (fdatasync of ~1 MiB + the relay's CPU for 4096
# events), 2.7 ms + ~2 ms here. The "floor" lines print it from the same
# run: relay-spool's fsyncs, mean fdatasync and events per fsync from its
# /metrics, the ceiling epf / (epf / relay rate + mean fsync), relay-spool's
# share of it, and the fsync time per batch the 70% goal would allow.) Then the stalled
# consumer: ingest rate into the spool with no consumer, and the drain rate
# once it connects. Then delivery latency at a paced RATE (50k msg/s, for
# DUR, 10s): the spool hands a worker only what is written to its file,
# never waiting for the fsync; p50/p99 beside the relay without a spool.
# N=messages per run (1,000,000; rsyslog-disk-sync is synced per message,
# so it gets N_SYNC=20,000), COUNT=runs per case (best shown),
# STALL=messages for the stalled-consumer run (2,000,000),
# SPOOL_DIR=the disk the spool is on (default: the temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
LIBZMQ=/usr/lib/x86_64-linux-gnu/libzmq.so.5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v rsyslogd >/dev/null || { echo "bench/spool.sh: needs rsyslogd with omczmq (make deps)" >&2; exit 1; }
[ -e "$LIBZMQ" ] || { echo "bench/spool.sh: needs $LIBZMQ (apt-get install libzmq5)" >&2; exit 1; }
cc -O2 -o "$tmp/pull" bench/relay/ref/pull.c "$LIBZMQ"
go build -o "$tmp/relay" ./relay
go build -o "$tmp/bench" ./bench/relay
args=(-relay "$tmp/relay" -cpull "$tmp/pull" -consumers c -latency=false -spool-dir "${SPOOL_DIR:-}")
"$tmp/bench" "${args[@]}" -targets relay,relay-spool,rsyslog-disk -n "${N:-1000000}" -count "${COUNT:-3}" -stall "${STALL:-2000000}"
echo
"$tmp/bench" "${args[@]}" -targets relay,relay-spool -n 100000 -count 1 -latency=true -latency-targets relay,relay-spool -rate "${RATE:-50000}" -dur "${DUR:-10s}" | sed -n '/^latency/,$p' 
echo
echo "rsyslog's disk queue synced per message (its equivalent of fsync: always) is slow: a smaller run"
"$tmp/bench" "${args[@]}" -targets relay-spool,rsyslog-disk-sync -n "${N_SYNC:-20000}" -count 1
