#!/usr/bin/env bash
# make bench: run every benchmark script and print its comparable numbers.
# Each script measures our code and its reference side by side in one run,
# because this machine (2 cores) is noisy: compare ratios, not absolutes.
# BENCH=zmq,relay runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
order=(zmq curve ingest input hostile relay relp spool bridge pipeline ackpush tap link broker)
want=${BENCH:-}
fail=0
for name in "${order[@]}"; do
  script=bench/$name.sh
  [ -f "$script" ] || continue
  if [ -n "$want" ] && [[ ",$want," != *",$name,"* ]]; then continue; fi
  echo "=================== bench/$name.sh ==================="
  if ! bash "$script"; then
    echo "bench/$name.sh FAILED" >&2
    fail=1
  fi
  echo
done
exit $fail
