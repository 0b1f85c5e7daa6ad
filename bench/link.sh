#!/usr/bin/env bash
# The relay link next to the plain relay-to-relay ZeroMQ path, in ONE run
# (bench/link/main.go): syslog TCP → relay A → link (mutual TLS, zstd, acks,
# relay A's spool fsync always, relay B's marks fsync'd before each ack)
# → relay B → libzmq PULL, beside relay A (PUSH) → relay B (PULL input →
# PUSH) → libzmq PULL, and the link again through a proxy adding RTT.
# Prints events/s and the ratios the goals are stated in: link >= 1M ev/s
# and >= 60% of plain; link with 100 ms RTT >= 50% of link. Beside them, the
# floors those goals run into on this machine: the link with compression:
# none (link-none), relay A's CPU per event with and without compression,
# and zstd alone on the same events with every core.
# N=events per run (1,000,000), COUNT=runs per case (3, best shown),
# RTT=100ms, COMPRESSION=zstd|s2|none, RX_SPOOL=false leaves relay B's
# PUSH output unspooled in the link cases (spooled, fsync always, by default).
# CASES=plain,link,... runs only those cases.
# PROFILE=DIR writes CPU profiles of both relays of each case's first run
# (go tool pprof DIR/link.A.0.pprof).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
LIBZMQ=/usr/lib/x86_64-linux-gnu/libzmq.so.5
[ -e "$LIBZMQ" ] || { echo "bench/link.sh: needs $LIBZMQ (apt-get install libzmq5)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/pull" bench/relay/ref/pull.c "$LIBZMQ"
tags=()
[ -n "${PROFILE:-}" ] && { mkdir -p "$PROFILE"; tags=(-tags tapprofile); }
go build "${tags[@]}" -o "$tmp/relay" ./relay
go build -o "$tmp/bench" ./bench/link
rx=(-rx-spool="${RX_SPOOL:-true}")
"$tmp/bench" -relay "$tmp/relay" -cpull "$tmp/pull" -n "${N:-1000000}" -count "${COUNT:-3}" \
  -rtt "${RTT:-100ms}" -compression "${COMPRESSION:-zstd}" -profile "${PROFILE:-}" -cases "${CASES:-}" "${rx[@]}"
