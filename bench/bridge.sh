#!/usr/bin/env bash
# rsyslog omprog -> omzmq-bridge -> libzmq (pyzmq) PULL, against rsyslog
# omprog -> bench/bridge/okprog (answers OK to every line at once), with the
# same messages, interleaved in one run, for each omprog mode:
# confirmMessages, transactions, fire-and-forget. Prints msg/s side by side
# with the ratio bridge/okprog; the last columns run the bridge with
# --confirm-when queued (confirm once queued within the HWM instead of once
# written to the peer's connection).
#
#   BRIDGE_BENCH_N=100000 BRIDGE_BENCH_ROUNDS=3 bench/bridge.sh
#
# Needs rsyslogd (with omprog) and /usr/bin/python3 with pyzmq.
set -euo pipefail
cd "$(dirname "$0")/.."
export BRIDGE_BENCH_N="${BRIDGE_BENCH_N:-100000}"
export BRIDGE_BENCH_ROUNDS="${BRIDGE_BENCH_ROUNDS:-3}"
export BRIDGE_BENCH_ARGS="${BRIDGE_BENCH_ARGS:---confirm-when queued}"
go test -run '^$' -bench '^BenchmarkOmprog$' -benchtime 1x -timeout 60m ./omzmq-bridge \
  | sed -n '/^rsyslog omprog/,/^goos:/p' | grep -v '^goos:'
