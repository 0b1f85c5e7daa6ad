# A libzmq (pyzmq) peer for the tests (testpeer.StartPeer, testpeer.PushLines).
#
#   peer.py pull ENDPOINT            PULL; prints each message
#   peer.py sub ENDPOINT [TOPIC...]  SUB to the topics ("" when none)
#   peer.py push ENDPOINT            PUSH each stdin line as a message;
#                                    prints "SENT n" when stdin ends
#
# ENDPOINT ">tcp://host:port" connects; "tcp://host:0" binds a free port.
# The first line is "READY <endpoint>"; then one JSON list of frames per
# message (UTF-8, invalid bytes replaced). It exits when stdin closes.
import json, sys, zmq

mode, ep = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
s = ctx.socket({"pull": zmq.PULL, "sub": zmq.SUB, "push": zmq.PUSH}[mode])
s.setsockopt(zmq.LINGER, 0)
if mode == "sub":
    for t in sys.argv[3:] or [""]:
        s.setsockopt(zmq.SUBSCRIBE, t.encode())
if ep.startswith(">"):
    ep = ep[1:]
    s.connect(ep)
elif ep.endswith(":0"):
    ep = ep[:-2] + ":" + str(s.bind_to_random_port(ep[:-2]))
else:
    s.bind(ep)
out = sys.stdout
out.write("READY " + ep + "\n")
out.flush()
if mode == "push":
    n = 0
    for line in sys.stdin.buffer:
        s.send(line.rstrip(b"\n"))
        n += 1
    s.setsockopt(zmq.LINGER, 10000)
    s.close()
    # LINGER is honoured while the context terminates: without term() the
    # process may exit before the queued messages left.
    ctx.term()
    out.write('["SENT %d"]\n' % n)
    out.flush()
    sys.exit(0)
poller = zmq.Poller()
poller.register(s, zmq.POLLIN)
poller.register(sys.stdin, zmq.POLLIN)
while True:
    ready = dict(poller.poll(50))
    if ready.get(sys.stdin.fileno()) or ready.get(sys.stdin):
        if not sys.stdin.buffer.read1(4096):
            break
    if not ready.get(s):
        continue
    lines = []
    for _ in range(10000):
        try:
            frames = s.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        lines.append(json.dumps([f.decode("utf-8", "replace") for f in frames]))
    if lines:
        out.write("\n".join(lines) + "\n")
        out.flush()
out.flush()
