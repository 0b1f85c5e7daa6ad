#!/usr/bin/env bash
# RELP receivers side by side with the same omrelp sender (an rsyslogd fed
# 200-byte messages on its imptcp), in ONE run: the relay's RELP input →
# PUSH → libzmq C PULL; the same with a disk spool on the PUSH output
# (relay-spool: fsync always, so every answer waits for the fdatasync that
# covers its event); rsyslog's imrelp → omczmq → the same consumer; and an
# instant no-op RELP server (the ceiling: every frame answered at once).
# Goals: relay and relay-spool >= 0.90x noop and >= 5x imrelp.
# At the snippet's window (rsyslog-conf/forward-relp.conf: windowSize 1024,
# dequeueBatchSize 1024) and at omrelp's defaults; then the relay's ack
# latency p50/p99 at a paced 20k msg/s, without and with the spool.
# N=messages per run (200,000), DEFAULT_N=messages with the default window
# (5,000: it runs at ~700 msg/s), COUNT=runs per case (best shown),
# SETTINGS=window:batch,… ("default" for omrelp's), RATE, DUR, SPOOL_DIR=the
# disk relay-spool's spool is on (default: the temp dir; not a tmpfs, or the
# fdatasyncs cost nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
LIBZMQ=/usr/lib/x86_64-linux-gnu/libzmq.so.5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || { echo "bench/relp.sh: needs rsyslogd with omrelp, imrelp, omczmq (make deps)" >&2; exit 1; }
[ -e "$LIBZMQ" ] || { echo "bench/relp.sh: needs $LIBZMQ (apt-get install libzmq5)" >&2; exit 1; }
cc -O2 -o "$tmp/pull" bench/relay/ref/pull.c "$LIBZMQ"
go build -o "$tmp/relay" ./relay
go build -o "$tmp/bench" ./bench/relp
"$tmp/bench" -relay "$tmp/relay" -cpull "$tmp/pull" \
  -n "${N:-200000}" -default-n "${DEFAULT_N:-5000}" -count "${COUNT:-2}" \
  -settings "${SETTINGS:-1024:1024,default}" -rate "${RATE:-20000}" -dur "${DUR:-10s}" \
  -spool-dir "${SPOOL_DIR:-$tmp}"
