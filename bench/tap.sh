#!/usr/bin/env bash
# Relay throughput with no tap clients against four (two tap CLIs on PUB,
# one tap CLI on the websocket, one websocket that reads nothing), in one
# run with alternating phases so the 2-core machine's noise hits both.
# Variants: taps on every stream; on one stream (a third); PUB taps only;
# websockets only; and an offered load of 100k events/s instead of "as fast
# as the relay takes them". Prints medians side by side, the ratio kept
# (goal: >= 95%) and the relay's CPU per event from /proc (the tap
# processes share the 2 cores, so saturated throughput also measures them).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== tap: relay throughput, 0 vs 4 tap clients (600k events, or 3s at a fixed rate, x 3 runs per phase)"
go test -run '^$' -bench 'BenchmarkRelayTaps' -benchtime="${TAP_BENCH_RUNS:-3}x" ./internal/tap/cli \
  | grep -E '^relay throughput' \
  | sed -E 's/ \(runs:.*//'
