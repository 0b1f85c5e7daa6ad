#!/usr/bin/python3
"""A libzmq peer driven over stdin, for the Go tests of internal/zmq.

usage: zpeer.py TYPE bind|connect ENDPOINT [options]
  --plain-client USER:PASS   PLAIN client credentials
  --plain-server USER:PASS   PLAIN server accepting only USER:PASS (via ZAP)
  --hwm N                    SNDHWM and RCVHWM
  --print                    print every received message as it arrives

Prints "READY <endpoint>" once bound/connected. Commands on stdin, one per
line; each answers "OK" when done:
  send N PREFIX     send N messages PREFIX%06d
  sendm A|B|C       send one multipart message
  sub TOPIC / unsub TOPIC   (empty TOPIC: everything)
  recv N            receive N messages, printing each
  stats             print "COUNT n" of messages received so far
Received messages print as "MSG frame|frame" (frames as latin-1 text).
EOF closes the socket and exits.
"""
import os
import sys

import zmq


def main():
    args = sys.argv[1:]
    typ, mode, ep = args[0], args[1], args[2]
    opts = {}
    i = 3
    while i < len(args):
        a = args[i]
        if a in ("--plain-client", "--plain-server", "--hwm"):
            opts[a] = args[i + 1]
            i += 2
        else:
            opts[a] = True
            i += 1

    ctx = zmq.Context()
    auth = None
    s = ctx.socket(getattr(zmq, typ.upper()))
    s.linger = 1000
    if "--hwm" in opts:
        s.sndhwm = int(opts["--hwm"])
        s.rcvhwm = int(opts["--hwm"])
    if "--plain-client" in opts:
        u, p = opts["--plain-client"].split(":", 1)
        s.plain_username = u.encode()
        s.plain_password = p.encode()
    if "--plain-server" in opts:
        from zmq.auth.thread import ThreadAuthenticator
        u, p = opts["--plain-server"].split(":", 1)
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_plain(domain="*", passwords={u: p})
        s.plain_server = True
    if mode == "bind":
        s.bind(ep)
        ep = s.getsockopt(zmq.LAST_ENDPOINT).decode()
    else:
        s.connect(ep)
    out = sys.stdout
    out.write("READY %s\n" % ep)
    out.flush()

    show = "--print" in opts
    received = 0
    poller = zmq.Poller()
    stdin = sys.stdin.fileno()
    poller.register(stdin, zmq.POLLIN)
    if typ.upper() in ("PULL", "SUB") and show:
        poller.register(s, zmq.POLLIN)
    pending = b""

    def show_msg(frames):
        out.write("MSG " + "|".join(f.decode("latin-1") for f in frames) + "\n")

    while True:
        events = dict(poller.poll())
        if s in events:
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                received += 1
                show_msg(frames)
            out.flush()
        if stdin not in events:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            cmd, _, arg = line.decode().partition(" ")
            if cmd == "send":
                n, _, prefix = arg.partition(" ")
                for k in range(int(n)):
                    s.send(("%s%06d" % (prefix, k)).encode())
            elif cmd == "sendm":
                s.send_multipart([f.encode() for f in arg.split("|")])
            elif cmd == "sub":
                s.setsockopt(zmq.SUBSCRIBE, arg.encode())
            elif cmd == "unsub":
                s.setsockopt(zmq.UNSUBSCRIBE, arg.encode())
            elif cmd == "recv":
                for _ in range(int(arg)):
                    frames = s.recv_multipart()
                    received += 1
                    show_msg(frames)
            elif cmd == "stats":
                out.write("COUNT %d\n" % received)
            out.write("OK\n")
            out.flush()
    s.close()
    if auth is not None:
        auth.stop()
    ctx.term()


if __name__ == "__main__":
    main()
