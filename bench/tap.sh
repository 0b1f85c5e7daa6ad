#!/usr/bin/env bash
# Relay throughput with no tap clients against four (two tap CLIs on PUB,
# one tap CLI on the websocket, one websocket that reads nothing), in one
# run with alternating phases so the 2-core machine's noise hits both.
# First, the HEADLINE: the relay as shipped (default config values, PUB hwm
# 1000) with the tap CLIs under SCHED_IDLE (they stand for other machines):
# every run, the medians and the pooled ratio. Then the other variants
# (PUB hwm 200000, as in the live tests): taps on every stream; on one
# stream (a third); PUB taps only; websockets only; the tap CLIs at nice
# 19 or under SCHED_IDLE (they stand for researchers on other machines, so
# they get only the CPU the relay and the load generator leave); and an offered load of 100k events/s instead
# of "as fast as the relay takes them". Prints medians side by side, the
# ratio kept (goal: >= 95%), what each tap received and the relay's drops,
# and the relay's CPU per event from /proc: its ratio is what serving the
# taps costs the relay itself.
#   TAP_BENCH_RUNS=N      runs per phase (default and minimum 3)
#   TAP_BENCH_FILTER=RE   variants to run, e.g. 'idle' (default: all)
#   TAP_BENCH_PROFILE=DIR CPU profiles of the relay per phase (pprof)
#   TAP_BENCH_HWM=N       the PUB output's hwm but in the headline (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== tap: relay throughput, 0 vs 4 tap clients (1.2M events, or 3s at a fixed rate, x ${TAP_BENCH_RUNS:-3} runs per phase); load $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench "BenchmarkRelayTaps/${TAP_BENCH_FILTER:-}" -benchtime=1x -timeout 30m ./internal/tap/cli \
  | grep -E '^HEADLINE|^(\(PUB hwm [0-9]+\) )?relay throughput|^  [a-z]|FAIL|_test\.go:'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
