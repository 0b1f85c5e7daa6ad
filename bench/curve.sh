#!/usr/bin/env bash
# CURVE throughput: 200-byte messages, PUSH -> PULL over TCP loopback, in
# separate processes, every case in ONE run with ratios to libzmq<->libzmq
# CURVE measured in the same run (bench/zmq/ref/cref.c on libzmq 4.3.4,
# libsodium). The PULL side binds as CURVE server (admitting any client),
# the PUSH side connects as client. Our NULL sockets run beside, so the
# cost of CURVE per message is (1/curve - 1/null) in ns, for us and for
# libzmq. Receivers time first to last message; each case is the best of
# COUNT. N=messages (default 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
N=${N:-1000000}
COUNT=${COUNT:-3}
PY=/usr/bin/python3
LIBZMQ=/usr/lib/x86_64-linux-gnu/libzmq.so.5
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/go" ./bench/zmq
[ -x "$PY" ] && "$PY" -c 'import zmq; assert zmq.has("curve")' || { echo "bench/curve.sh: needs $PY with pyzmq built with CURVE (make deps)" >&2; exit 1; }
[ -e "$LIBZMQ" ] || { echo "bench/curve.sh: needs $LIBZMQ (apt-get install libzmq5)" >&2; exit 1; }
cc -O2 -o "$tmp/c" bench/zmq/ref/cref.c "$LIBZMQ" || { echo "bench/curve.sh: needs a C compiler for the libzmq reference" >&2; exit 1; }

# Fresh key pairs for the run (Z85).
read -r SPUB SSEC CPUB CSEC < <("$PY" -c '
import zmq
s = zmq.curve_keypair(); c = zmq.curve_keypair()
print(s[0].decode(), s[1].decode(), c[0].decode(), c[1].decode())')
SERVER=(-curve-server "$SSEC")
CLIENT=(-curve-client "$SPUB,$CPUB,$CSEC")

impl() {
  case $1 in
    go) echo "$tmp/go" ;;
    c) echo "$tmp/c" ;;
  esac
}

wait_ready() {
  for _ in $(seq 1 600); do
    if grep -q '^READY ' "$1" 2>/dev/null; then awk '/^READY /{print $2; exit}' "$1"; return; fi
    sleep 0.05
  done
  echo "no READY in $1" >&2; exit 1
}

# pushpull SENDER RECEIVER MECH: receiver binds, sender connects; prints msg/s.
pushpull() {
  local id=$RANDOM rflags=() sflags=()
  if [ "$3" = curve ]; then rflags=("${SERVER[@]}"); sflags=("${CLIENT[@]}"); fi
  $(impl "$2") -role pull -bind tcp://127.0.0.1:0 -n "$N" "${rflags[@]}" >"$tmp/r$id" &
  local rpid=$!
  pids+=($rpid)
  local ep
  ep=$(wait_ready "$tmp/r$id")
  mkfifo "$tmp/in$id"
  $(impl "$1") -role push -connect "$ep" -n "$N" "${sflags[@]}" <"$tmp/in$id" >/dev/null &
  local spid=$!
  pids+=($spid)
  exec 9>"$tmp/in$id"
  sleep 0.3
  echo go >&9
  wait $rpid || true
  exec 9>&-
  wait $spid || true
  awk '/^RATE/{print $2}' "$tmp/r$id"
}

best() {
  local top=0 r
  for _ in $(seq 1 "$COUNT"); do
    r=$("$@")
    r=${r:-0}
    if awk -v a="$r" -v b="$top" 'BEGIN { exit !(a > b) }'; then top=$r; fi
  done
  echo "$top"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# cost CURVE NULL: ns per message CURVE adds over NULL.
cost() { awk -v c="$1" -v n="$2" 'BEGIN { if (c > 0 && n > 0) printf "%.0f ns", 1e9 / c - 1e9 / n; else print "-" }'; }

echo "N=$N messages of 200 bytes, PUSH -> PULL over TCP loopback, $(nproc) cores (shared: compare ratios)"
echo
ref=$(best pushpull c c curve)
gg=$(best pushpull go go curve)
gc=$(best pushpull go c curve)
cg=$(best pushpull c go curve)
ggn=$(best pushpull go go null)
ccn=$(best pushpull c c null)
printf "%-36s %12s %18s\n" "CURVE PUSH -> PULL" "msg/s" "vs libzmq CURVE"
printf "%-36s %12s %18s\n" "libzmq -> libzmq (C, reference)" "$ref" "1.00x"
printf "%-36s %12s %18s\n" "Go -> Go" "$gg" "$(ratio "$gg" "$ref")"
printf "%-36s %12s %18s\n" "Go -> libzmq" "$gc" "$(ratio "$gc" "$ref")"
printf "%-36s %12s %18s\n" "libzmq -> Go" "$cg" "$(ratio "$cg" "$ref")"
echo
printf "%-36s %12s %18s\n" "NULL PUSH -> PULL" "msg/s" "CURVE costs/msg"
printf "%-36s %12s %18s\n" "Go -> Go" "$ggn" "$(cost "$gg" "$ggn")"
printf "%-36s %12s %18s\n" "libzmq -> libzmq (C)" "$ccn" "$(cost "$ref" "$ccn")"
echo
echo "Go -> Go CURVE: $(ratio "$gg" "$ref") of libzmq <-> libzmq CURVE (target >= 1.00x); CURVE keeps $(ratio "$gg" "$ggn") of our NULL rate"
