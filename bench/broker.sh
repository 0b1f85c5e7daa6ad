#!/usr/bin/env bash
# Broker outputs, each beside a raw client of the same broker in one run:
# syslog TCP -> relay -> spooled (fsync always) jetstream output ->
# nats-server (Debian's) against a Go client publishing asynchronously with
# message ids (goal >= 90%), and the kafka output into a three-broker kfake
# cluster against a raw franz-go producer (goal >= 70%). kfake is an
# in-process, memory-only test harness: a ratio, not a Kafka throughput.
# N events per run (default 300000), RUNS runs each (best counts).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || { echo "nats-server missing: apt-get install nats-server" >&2; exit 1; }
[ -x bin/relay ] || go build -o bin/ ./relay
go run ./bench/broker -relay bin/relay -n "${N:-300000}" -runs "${RUNS:-2}" -only "${ONLY:-jetstream,kafka}"
