#!/usr/bin/python3
"""bench/zmq.sh's pyzmq reference: same flags and output as main.go."""
import argparse
import sys
import time

import zmq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-role")
    ap.add_argument("-bind", default="")
    ap.add_argument("-connect", default="")
    ap.add_argument("-n", type=int, default=1000000)
    ap.add_argument("-size", type=int, default=200)
    ap.add_argument("-stall", action="store_true")
    ap.add_argument("-hwm", type=int, default=0)
    ap.add_argument("-subs", type=int, default=1)
    ap.add_argument("-stalled", type=int, default=0)
    ap.add_argument("-batch", type=int, default=1)
    a = ap.parse_args()
    ctx = zmq.Context()
    s = ctx.socket(getattr(zmq, a.role.upper()))
    if a.hwm:
        s.sndhwm = a.hwm
        s.rcvhwm = a.hwm
    if a.role == "sub":
        s.setsockopt(zmq.SUBSCRIBE, b"")
    if a.bind:
        s.bind(a.bind)
        print("READY", s.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    if a.connect:
        s.connect(a.connect)
    payload = b"x" * a.size
    if a.role in ("push", "pub"):
        sys.stdin.readline()  # "go"
        send = s.send
        for _ in range(a.n):
            send(payload)
        sys.stdin.read()
        if a.role == "pub":
            print("DROPS -1 MAXRSS_KB -1", flush=True)
        s.close(linger=0)
        return
    if a.stall:
        sys.stdin.read()
        return
    recv = s.recv
    got = 0
    s.rcvtimeo = 60000
    first = last = 0.0
    try:
        recv()
        first = last = time.monotonic()
        got = 1
        s.rcvtimeo = 2000
        while got < a.n:
            recv()
            got += 1
        last = time.monotonic()
    except zmq.Again:
        last = time.monotonic() - 2.0
    rate = (got - 1) / (last - first) if last > first else 0
    print("RATE %.0f RECV %d" % (rate, got), flush=True)
    s.close(linger=0)


if __name__ == "__main__":
    main()
