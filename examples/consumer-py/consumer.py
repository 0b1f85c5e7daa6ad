#!/usr/bin/env python3
"""The seeds' summarizer in miniature, in Python: subscribe to a relay's PUB
endpoint with pyzmq and keep, per stream, an event count and a HyperLogLog
of unique users.

    python3 consumer.py tcp://127.0.0.1:5556 --user 'sd:user@32473.id' [--stream click] [-n 100000]

Messages are two frames: the stream (topic) and the event, raw syslog or a
JSON object (first byte '{') depending on the relay output's format. The
user is an RFC 5424 structured-data parameter (sd:ID.param) or a JSON field
of the event (json:a.b, read from the JSON output's "message" if that is
JSON). Needs only pyzmq (Debian: python3-zmq).
"""
import argparse
import hashlib
import json
import math
import re
import signal
import sys
import time

import zmq


class HyperLogLog:
    """HyperLogLog with 2^p registers (standard error 1.04/sqrt(2^p))."""

    def __init__(self, p=14):
        self.p, self.m = p, 1 << p
        self.regs = bytearray(self.m)
        self.alpha = 0.7213 / (1 + 1.079 / self.m)

    def add(self, value):
        h = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
        idx = h >> (64 - self.p)
        rest = (h << self.p) & ((1 << 64) - 1)
        rank = 1
        while rank <= 64 - self.p and not rest & (1 << 63):
            rank += 1
            rest <<= 1
        if rank > self.regs[idx]:
            self.regs[idx] = rank

    def estimate(self):
        e = self.alpha * self.m * self.m / sum(2.0 ** -r for r in self.regs)
        zeros = self.regs.count(0)
        if e <= 2.5 * self.m and zeros:
            return round(self.m * math.log(self.m / zeros))  # linear counting
        return round(e)


def user_getter(spec):
    """Return a function (payload bytes) -> user string or None."""
    if spec.startswith("sd:"):
        sd_id, _, param = spec[3:].rpartition(".")
        elem = re.compile(rb"\[" + re.escape(sd_id.encode()) + rb"((?:[^\]\\]|\\.)*)\]")
        par = re.compile(rb"\s" + re.escape(param.encode()) + rb'="((?:[^"\\]|\\.)*)"')

        def get(payload, obj):
            if obj is not None:
                v = obj.get("structured_data", {}).get(sd_id, {}).get(param)
                return v
            m = elem.search(payload)
            if not m:
                return None
            p = par.search(m.group(1))
            return p.group(1).decode("utf-8", "replace") if p else None
        return get
    if spec.startswith("json:"):
        path = spec[5:].split(".")

        def get(payload, obj):
            body = obj.get("message") if obj is not None else payload.split(b" ", 7)[-1].decode("utf-8", "replace")
            try:
                v = json.loads(body.removeprefix("@cee:")) if isinstance(body, str) else None
                for k in path:
                    v = v[k]
                return str(v)
            except (ValueError, KeyError, TypeError, IndexError):
                return None
        return get
    sys.exit(f"consumer.py: --user {spec!r}: use sd:ID.param or json:path")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default="tcp://127.0.0.1:5556")
    ap.add_argument("--user", default="sd:user@32473.id")
    ap.add_argument("--stream", action="append", default=[], help="subscription prefix (repeatable)")
    ap.add_argument("-n", type=int, default=0, help="stop after N events")
    ap.add_argument("--every", type=float, default=5.0, help="print the summary every N seconds")
    args = ap.parse_args()

    get_user = user_getter(args.user)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100000)
    for s in args.stream or [""]:
        sub.setsockopt_string(zmq.SUBSCRIBE, s)
    sub.connect(args.source)

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    counts, users = {}, {}
    total, nxt = 0, time.time() + args.every
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    while not stop and (args.n == 0 or total < args.n):
        if not poller.poll(200):
            continue
        frames = sub.recv_multipart()
        if len(frames) < 2:
            continue
        stream, payload = frames[0].decode("utf-8", "replace"), frames[-1]
        obj = json.loads(payload) if payload[:1] == b"{" else None
        counts[stream] = counts.get(stream, 0) + 1
        u = get_user(payload, obj)
        if u is not None:
            users.setdefault(stream, HyperLogLog()).add(u)
        total += 1
        if time.time() > nxt:
            report(counts, users)
            nxt = time.time() + args.every
    report(counts, users)
    sub.close(linger=0)
    ctx.term()


def report(counts, users):
    for s in sorted(counts):
        u = users[s].estimate() if s in users else 0
        print(f"{s} events={counts[s]} unique_users={u}", flush=True)


if __name__ == "__main__":
    main()
