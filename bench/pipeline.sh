#!/usr/bin/env bash
# The batch-acknowledged pipeline (examples/pipeline): Go against the Python
# reference (pipeline.py on Debian's pyzmq), same message count, batch
# sizes, workers and message size. Go runs three ways: workers as
# goroutines in one process ("go"), the same with GOMAXPROCS=1 ("go-p1":
# no thread wake-ups between stages, which favours small batches on a quiet
# machine), and workers as child processes like pipeline.py ("go-procs").
# Runs are interleaved per batch size, so the machine's noise hits all
# alike; compare the ratio columns. "raw-tcp" is bench/pipefloor: the same
# pattern over bare TCP with no ZeroMQ at all (a length and an id per
# message, one write per connection per batch), the floor the kernel and
# the Go runtime set for any implementation on this machine; "raw-tcp-c" is
# the same in C with a blocking thread per role (bench/pipefloor/c), the
# kernel's floor without any language runtime.
#   COUNT=1000000 BATCHES=1000000,1000,100,50,10 WORKERS=4 SIZE=32 bash bench/pipeline.sh
# Writes the chart to $CHART (default bench/results/pipeline.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
COUNT=${COUNT:-1000000}
BATCHES=${BATCHES:-1000000,1000,100,50,10}
WORKERS=${WORKERS:-4}
SIZE=${SIZE:-32}
CHART=${CHART:-bench/results/pipeline.svg}
PY=/usr/bin/python3
if ! "$PY" -c 'import zmq' 2>/dev/null; then
  echo "bench/pipeline.sh: $PY has no pyzmq: apt-get install python3-zmq" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/pipeline" ./examples/pipeline
go build -o "$tmp/pipefloor" ./bench/pipefloor
cc -O2 -Wall -pthread -o "$tmp/floor-c" bench/pipefloor/c/floor.c
echo "pipeline: $COUNT messages of $SIZE bytes, $WORKERS workers, one batch in flight; Go GOMAXPROCS=${GOMAXPROCS:-$(nproc)}, $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in ${BATCHES//,/ }; do
  "$PY" examples/pipeline/pipeline.py --tsv --batch "$b" --count "$COUNT" --workers "$WORKERS" --size "$SIZE" | tee -a "$tmp/results.tsv"
  "$tmp/pipeline" run -tsv -batch "$b" -count "$COUNT" -workers "$WORKERS" -size "$SIZE" | tee -a "$tmp/results.tsv"
  GOMAXPROCS=1 "$tmp/pipeline" run -tsv -label go-p1 -batch "$b" -count "$COUNT" -workers "$WORKERS" -size "$SIZE" | tee -a "$tmp/results.tsv"
  "$tmp/pipeline" run -tsv -procs -batch "$b" -count "$COUNT" -workers "$WORKERS" -size "$SIZE" | tee -a "$tmp/results.tsv"
  "$tmp/pipefloor" -batch "$b" -count "$COUNT" -workers "$WORKERS" -size "$SIZE" | tee -a "$tmp/results.tsv"
  "$tmp/floor-c" "$b" "$COUNT" "$WORKERS" "$SIZE" | tee -a "$tmp/results.tsv"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$(dirname "$CHART")"
echo
"$tmp/pipeline" compare -svg "$CHART" <"$tmp/results.tsv"
echo "chart: $CHART"
