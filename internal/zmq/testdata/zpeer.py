#!/usr/bin/python3
"""A libzmq peer driven over stdin, for the Go tests of internal/zmq.

usage: zpeer.py TYPE bind|connect ENDPOINT [options]
  --plain-client USER:PASS   PLAIN client credentials
  --plain-server USER:PASS   PLAIN server accepting only USER:PASS (via ZAP)
  --hwm N                    SNDHWM and RCVHWM
  --curve-server SECRET      CURVE server with this Z85 secret key; without
                             --curve-allow every client is admitted
  --curve-allow DIR|*        admit only the clients whose certificates are
                             in DIR (ZAP, zmq.auth), or any client (*)
  --curve-client SERVERKEY,PUBLIC,SECRET   CURVE client keys (Z85)
  --monitor                  print "EVENT <name> <value>" for handshake events
                             and disconnections
  --heartbeat MS             send PINGs every MS, drop the peer after 3*MS silence
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
        if a in ("--plain-client", "--plain-server", "--hwm", "--curve-server", "--curve-allow", "--curve-client", "--heartbeat"):
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
    if "--curve-server" in opts:
        secret = opts["--curve-server"].encode()
        s.curve_secretkey = secret
        s.curve_publickey = zmq.curve_public(secret)
        s.curve_server = True
        if "--curve-allow" in opts:
            from zmq.auth.thread import ThreadAuthenticator
            auth = ThreadAuthenticator(ctx)
            auth.start()
            loc = opts["--curve-allow"]
            auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY if loc == "*" else loc)
    if "--curve-client" in opts:
        server, public, secret = opts["--curve-client"].split(",", 2)
        s.curve_serverkey = server.encode()
        s.curve_publickey = public.encode()
        s.curve_secretkey = secret.encode()
    if "--heartbeat" in opts:
        ms = int(opts["--heartbeat"])
        s.heartbeat_ivl = ms
        s.heartbeat_timeout = 3 * ms
        s.heartbeat_ttl = 3 * ms
    mon = None
    if "--monitor" in opts:
        mon = s.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_DISCONNECTED)
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
    names = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "HANDSHAKE_SUCCEEDED",
             zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "HANDSHAKE_FAILED_PROTOCOL",
             zmq.EVENT_HANDSHAKE_FAILED_AUTH: "HANDSHAKE_FAILED_AUTH",
             zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "HANDSHAKE_FAILED_NO_DETAIL",
             zmq.EVENT_DISCONNECTED: "DISCONNECTED"}
    if mon is not None:
        from zmq.utils.monitor import recv_monitor_message
        poller.register(mon, zmq.POLLIN)
    if typ.upper() in ("PULL", "SUB") and show:
        poller.register(s, zmq.POLLIN)
    pending = b""

    def show_msg(frames):
        out.write("MSG " + "|".join(f.decode("latin-1") for f in frames) + "\n")

    while True:
        events = dict(poller.poll())
        if mon is not None and mon in events:
            while True:
                try:
                    ev = recv_monitor_message(mon, zmq.NOBLOCK)
                except zmq.Again:
                    break
                out.write("EVENT %s %d\n" % (names.get(ev["event"], str(ev["event"])), ev["value"]))
            out.flush()
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
    if mon is not None:
        s.disable_monitor()
        mon.close()
    s.close()
    if auth is not None:
        auth.stop()
    ctx.term()


if __name__ == "__main__":
    main()
