#!/usr/bin/env bash
# Broker outputs, each beside a raw client of the same broker in one run:
# syslog TCP -> relay -> spooled (fsync always) jetstream output ->
# nats-server (Debian's) against a Go client publishing asynchronously with
# message ids (goal >= 90%), and the kafka output into a three-broker
# kfake cluster against a raw franz-go producer (goal >= 70%); each beside
# the relay's own path into a PUSH consumer in the same run (the same
# events and spool: the ceiling of any spooled output), with the relay's
# and the broker's CPU per event. kfake
# is a memory-only test harness, run in a process of its own: a ratio, not
# a Kafka throughput. N events per run (default 300000), RUNS runs each
# (each run's ratio, their median). PROFILE=DIR: CPU profiles of the first
# jetstream and kafka run (relay, and the kafka run's relay into PUSH; kfake and the raw
# producer) into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || { echo "nats-server missing: apt-get install nats-server" >&2; exit 1; }
relay=bin/relay
go build -o bin/ ./relay # always: a stale binary would measure old code
if [ -n "${PROFILE:-}" ]; then
	pdir=$(mktemp -d)
	trap 'rm -rf "$pdir"' EXIT
	relay=$pdir/relay
	go build -tags tapprofile -o "$relay" ./relay
fi
go run ./bench/broker -relay "$relay" -n "${N:-300000}" -runs "${RUNS:-3}" -only "${ONLY:-jetstream,kafka}" -profile "${PROFILE:-}"
