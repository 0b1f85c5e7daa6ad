#!/usr/bin/python3
"""A worker and a sink for the relay's acknowledged PUSH output, in pyzmq.

The relay (an output with `ack:`) sends every event as a two-frame message:
a 20-byte header, then the event. It expects one 16-byte ack per batch, on
its ack endpoint, once the batch is safe. Either the workers ack what they
processed, or they pass the messages on (header first, unchanged) to a sink
that acks; see README.md, "Acknowledged PUSH", for the frames.

    ackworker.py worker --in tcp://relay:5557 --ack tcp://relay:5558
        process each event (here: print it), ack each complete batch
    ackworker.py worker --in tcp://relay:5557 --out tcp://sink:5560
        pass every message on to a sink unchanged, header first; the sink acks
    ackworker.py worker --in tcp://relay:5557 --out tcp://next:5560 --ack tcp://relay:5558
        pass each event on once, then ack its batch: NOT safe, see below
    ackworker.py sink --in tcp://*:5560 --ack tcp://relay:5558
        take the workers' results, ack each complete batch

Who acks takes responsibility: ack a batch only once its events are where
a crash of this process cannot lose them. The first and last modes do that
(the events are printed, and written to stdout, before the ack; the sink
acks what reached it). The third cannot: pyzmq's send only queues a message
in libzmq, whose I/O thread writes it later, and libzmq never tells when a
message has reached the kernel. A kill -9 of such a worker loses what was
still queued although its batches are acked (measured: 227 and 656 of
20,000 events in two of three runs with a slow next stage). Pass-through
workers with an acking sink (the second and last modes together, as in the
seed) are safe: a worker that dies takes only unacknowledged events with
it, and the relay resends them. The Go worker (`pipeline ackworker -out …
-ack …`) acks only what it has written to the kernel.

A batch arrives whole at one worker, unless the relay resends it after its
ack timeout (flagged RESENT), maybe to another worker: copies of events the
process already has are dropped here, and a batch already acked is acked
again (the first ack may have been lost). A restarted relay is a new
sender stream. Endpoints: "tcp://*:port" binds, anything else connects.

Run with Debian's interpreter, which has pyzmq: /usr/bin/python3.
"""

import argparse
import collections
import signal
import struct
import sys

import zmq

HEADER = struct.Struct(">BBBxIQI")  # version, kind 'D', flags, -, stream, batch, index
ACK = struct.Struct(">BBxxIQ")      # version, kind 'A', -, -, stream, batch
VERSION, DATA, ACKKIND = 1, ord("D"), ord("A")
LAST, RESENT, MARKER = 0x01, 0x02, 0x04


class Batches:
    """Which events of which batches this process has, to drop copies and
    to know when a batch is complete. Bounded: old batches are forgotten."""

    def __init__(self, keep=4096):
        self.open = collections.OrderedDict()  # (stream, seq) -> [set of indexes, last index or None]
        self.done = collections.OrderedDict()  # (stream, seq) -> True, completed
        self.keep = keep
        self.copies = 0

    def add(self, stream, seq, index, flags):
        """Returns (fresh, complete, reack): fresh if this event is new,
        complete if it completed its batch, reack if the batch was complete
        already and this copy closes it again."""
        key = (stream, seq)
        if key in self.done:
            if not flags & MARKER:
                self.copies += 1
            return False, False, bool(flags & LAST)
        st = self.open.get(key)
        if st is None:
            st = self.open[key] = [set(), None]
            if len(self.open) > self.keep:
                self.open.popitem(last=False)
        have, last = st
        if index in have:
            self.copies += 1
            return False, False, False
        have.add(index)
        if flags & LAST:
            st[1] = last = index
        complete = last is not None and len(have) == last + 1
        if complete:
            del self.open[key]
            self.done[key] = True
            if len(self.done) > self.keep:
                self.done.popitem(last=False)
        return not flags & MARKER, complete, False  # a marker only closes its batch


def endpoint(sock, ep):
    if "*" in ep or ep.startswith("ipc://"):
        sock.bind(ep)
    else:
        sock.connect(ep)


def run(mode, a):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    endpoint(pull, a.inp)
    out = None
    if a.out:
        out = ctx.socket(zmq.PUSH)
        endpoint(out, a.out)
    acks = None
    if a.ack:
        acks = ctx.socket(zmq.PUSH)
        endpoint(acks, a.ack)
    tag = [a.id.encode()] if a.id else []
    batches = Batches()
    print("READY", flush=True)
    while True:
        frames = pull.recv_multipart()
        if out is not None and acks is None:
            # A pass-through worker: the sink drops copies and acks, so
            # everything goes on unchanged, header first, markers included.
            out.send_multipart(frames + tag)
            continue
        if len(frames[0]) != HEADER.size:
            print("not an ackpipe message: %d-byte first frame" % len(frames[0]), file=sys.stderr)
            continue
        version, kind, flags, stream, seq, index = HEADER.unpack(frames[0])
        if version != VERSION or kind != DATA or seq == 0:
            print("bad header %r" % frames[0], file=sys.stderr)
            continue
        fresh, complete, reack = batches.add(stream, seq, index, flags)
        if fresh:
            if out is not None:
                out.send_multipart(frames + tag)
            else:
                # The work. A real worker would transform or store the event.
                if a.print:
                    sys.stdout.buffer.write(frames[1] + b"\n")
                    sys.stdout.flush()
        if (complete or reack) and acks is not None:
            # Ack only after the batch's events are processed (or passed on).
            acks.send(ACK.pack(VERSION, ACKKIND, stream, seq))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("mode", choices=["worker", "sink"])
    ap.add_argument("--in", dest="inp", required=True, help="where events come from (PULL)")
    ap.add_argument("--out", help="worker: pass events on to this sink (PUSH)")
    ap.add_argument("--ack", help="send acks of complete batches here (the relay's ack endpoint)")
    ap.add_argument("--id", help="worker: append this frame to every event passed on (tests use it)")
    ap.add_argument("--print", action="store_true", help="print each event's payload, one per line")
    a = ap.parse_args()
    if a.mode == "sink" and not a.ack:
        ap.error("a sink needs --ack")
    if a.mode == "sink" and a.out:
        ap.error("a sink has no --out")
    if a.mode == "worker" and not (a.ack or a.out):
        ap.error("a worker needs --ack (it acks) or --out (a sink acks)")
    if a.mode == "worker" and a.ack and a.out:
        print("ackworker.py: warning: --out with --ack acks events still queued in libzmq; "
              "a crash of this process can lose acknowledged events: let the sink ack instead",
              file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run(a.mode, a)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
