#!/usr/bin/python3
"""Batch-acknowledged ventilator/worker/sink pipeline: the Python reference.

A fresh, runnable version of the pattern in the seed ("Batch Acknowledged
Pipelines with ZeroMQ"): the ventilator PUSHes a batch of tasks to the
workers, the workers PUSH results to the sink, and the sink PUSHes one ack
per completed batch back to the ventilator, which never has more than one
batch in flight. Each role is a multiprocessing.Process, as in the seed.

Every message is one frame: batch sequence (u64 LE), message id (u64 LE),
zero padding up to --size bytes. The sink checks that every id arrived
exactly once.

Run with Debian's interpreter, which has pyzmq:
    /usr/bin/python3 pipeline.py --batch 1000000,1000,100,50,10 --count 1000000

With --tsv it prints one tab-separated line per batch size, the format
bench/pipeline.sh and `pipeline compare` read:
    impl batch count seconds msgs_per_sec exactly_once
"""

import argparse
import multiprocessing as mp
import struct
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

HEADER = struct.Struct("<QQ")
ACK = struct.Struct("<Q")


def wait_peers(monitor, want, deadline):
    """Block until `want` peers finished the ZMTP handshake on a bound socket.

    PUSH only round-robins over peers whose handshake is done; starting
    earlier would hand every task to the first worker that connected.
    """
    done = 0
    while done < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit("pipeline.py: workers did not connect in time")
        if not monitor.poll(int(left * 1000)):
            continue
        ev = recv_monitor_message(monitor)
        if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            done += 1
    # An open monitor socket would make Context.term() wait forever.
    monitor.close(linger=0)


def ventilator(batch, count, size, workers, ports, start, results):
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    mon = push.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    task_port = push.bind_to_random_port("tcp://127.0.0.1")
    acks = ctx.socket(zmq.PULL)
    ack_port = acks.bind_to_random_port("tcp://127.0.0.1")
    ports.put(("ventilator", task_port, ack_port))
    wait_peers(mon, workers, time.monotonic() + 10)
    push.disable_monitor()
    start.wait()

    pad = bytes(max(0, size - HEADER.size))
    pack = HEADER.pack
    send = push.send
    t0 = time.monotonic()
    sent = 0
    seq = 0
    while sent < count:
        n = min(batch, count - sent)
        for i in range(sent, sent + n):
            send(pack(seq, i) + pad)
        sent += n
        # One batch in flight: block until the sink acknowledges it.
        (acked,) = ACK.unpack(acks.recv())
        if acked != seq:
            raise SystemExit("pipeline.py: ack for batch %d, want %d" % (acked, seq))
        seq += 1
    results.put(("ventilator", t0))
    push.close(linger=0)
    acks.close(linger=0)
    ctx.term()


def worker(task_port, result_port):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect("tcp://127.0.0.1:%d" % task_port)
    push = ctx.socket(zmq.PUSH)
    push.connect("tcp://127.0.0.1:%d" % result_port)
    recv, send = pull.recv, push.send
    while True:
        # The "work": a real worker would transform the task here.
        send(recv())


def sink(batch, count, workers, ack_port, ports, results):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    mon = pull.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    result_port = pull.bind_to_random_port("tcp://127.0.0.1")
    ack = ctx.socket(zmq.PUSH)
    ack.connect("tcp://127.0.0.1:%d" % ack_port)
    ports.put(("sink", result_port))
    wait_peers(mon, workers, time.monotonic() + 10)
    pull.disable_monitor()
    ports.put(("sink-ready",))

    seen = bytearray(count)
    dups = 0
    bad = 0
    recv = pull.recv
    unpack = HEADER.unpack_from
    received = 0
    seq = 0
    while received < count:
        n = min(batch, count - received)
        for _ in range(n):
            bseq, mid = unpack(recv())
            if bseq != seq or mid >= count:
                bad += 1
                continue
            if seen[mid]:
                dups += 1
            seen[mid] = 1
        received += n
        ack.send(ACK.pack(seq))
        seq += 1
    t1 = time.monotonic()
    missing = count - sum(seen)
    results.put(("sink", t1, missing, dups, bad))
    ack.close(linger=1000)
    pull.close(linger=0)
    ctx.term()


def run(batch, count, size, nworkers):
    """One ventilator, nworkers workers and one sink; returns (seconds, ok)."""
    ports, results = mp.Queue(), mp.Queue()
    start = mp.Event()
    vent = mp.Process(target=ventilator, args=(batch, count, size, nworkers, ports, start, results))
    vent.start()
    _, task_port, ack_port = ports.get(timeout=10)
    snk = mp.Process(target=sink, args=(batch, count, nworkers, ack_port, ports, results))
    snk.start()
    _, result_port = ports.get(timeout=10)
    ws = [mp.Process(target=worker, args=(task_port, result_port), daemon=True) for _ in range(nworkers)]
    for w in ws:
        w.start()
    ports.get(timeout=15)  # sink-ready: every worker reached the sink
    start.set()

    got = {}
    for _ in range(2):
        r = results.get()
        got[r[0]] = r[1:]
    vent.join()
    snk.join()
    for w in ws:
        w.terminate()
        w.join()
    (t0,) = got["ventilator"]
    t1, missing, dups, bad = got["sink"]
    return t1 - t0, missing == 0 and dups == 0 and bad == 0, (missing, dups, bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", default="1000000,1000,100,50,10",
                    help="comma-separated batch sizes (messages per acknowledgement)")
    ap.add_argument("--count", type=int, default=1000000, help="messages per run")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--size", type=int, default=32, help="message size in bytes (at least 16)")
    ap.add_argument("--tsv", action="store_true", help="machine-readable lines for bench/pipeline.sh")
    a = ap.parse_args()
    if a.size < HEADER.size:
        ap.error("--size must be at least %d bytes (sequence and id)" % HEADER.size)

    if not a.tsv:
        print("%10s %10s %10s %12s  %s" % ("batch", "messages", "seconds", "msg/s", "exactly-once"))
    failed = False
    for b in (int(x) for x in a.batch.split(",")):
        secs, ok, detail = run(b, a.count, a.size, a.workers)
        failed |= not ok
        rate = a.count / secs
        if a.tsv:
            print("python\t%d\t%d\t%.6f\t%.0f\t%s" % (b, a.count, secs, rate, "yes" if ok else "no"))
        else:
            verdict = "yes" if ok else "NO (missing %d, duplicates %d, foreign %d)" % detail
            print("%10d %10d %10.3f %12.0f  %s" % (b, a.count, secs, rate, verdict))
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
