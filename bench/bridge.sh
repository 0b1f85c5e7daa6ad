#!/usr/bin/env bash
# rsyslog omprog -> omzmq-bridge -> libzmq PULL, against rsyslog omprog ->
# bench/bridge/okprog (answers OK to every line at once), with the same
# messages, interleaved in one run, for each omprog mode:
# confirmMessages, transactions, fire-and-forget. Prints msg/s side by side
# with the ratio bridge/okprog; the last columns run the bridge with
# --confirm-when queued (confirm once queued within the HWM instead of once
# written to the peer's connection).
#
#   BRIDGE_BENCH_N=100000 BRIDGE_BENCH_ROUNDS=3 bench/bridge.sh
#
# The consumer is bench/bridge/pull.c, a libzmq PULL in C that counts and
# exits once it has every message; the benchmark compiles it with cc
# against Debian's libzmq5 (no headers needed). BRIDGE_BENCH_CONSUMER=pyzmq
# uses the pyzmq PULL of internal/testpeer instead: it takes a whole core
# at ~359k msg/s, which caps fire-and-forget on 2 cores.
#
# Needs rsyslogd (with omprog), cc and libzmq5 (or /usr/bin/python3 with
# pyzmq for BRIDGE_BENCH_CONSUMER=pyzmq).
set -euo pipefail
cd "$(dirname "$0")/.."
export BRIDGE_BENCH_N="${BRIDGE_BENCH_N:-100000}"
export BRIDGE_BENCH_ROUNDS="${BRIDGE_BENCH_ROUNDS:-3}"
export BRIDGE_BENCH_ARGS="${BRIDGE_BENCH_ARGS:---confirm-when queued}"
export BRIDGE_BENCH_CONSUMER="${BRIDGE_BENCH_CONSUMER:-c}"
go test -run '^$' -bench '^BenchmarkOmprog$' -benchtime 1x -timeout 60m ./omzmq-bridge \
  | sed -n '/^rsyslog omprog/,/^goos:/p' | grep -v '^goos:'
