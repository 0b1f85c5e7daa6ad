# bench/relay.sh's pyzmq consumer: same arguments and output as pull.c.
# Count mode is a tight recv loop (no parsing), so "unique" is -1 there.
import sys, time, zmq

ep, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = zmq.Context()
s = ctx.socket(zmq.PULL)
s.bind(ep)
print("READY " + s.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
count, first, last = 0, 0, 0
lats = []
recv = s.recv
now = time.time_ns
try:
    m = recv()
    first = last = now()
    count = 1
    s.setsockopt(zmq.RCVTIMEO, 3000)
    if mode == "latency":
        i = m.find(b"ts:")
        lats.append(last - int(m[i + 3:i + 22]))
        while count < n:
            m = recv()
            last = now()
            count += 1
            i = m.find(b"ts:")
            lats.append(last - int(m[i + 3:i + 22]))
    else:
        while count < n:
            recv()
            count += 1
        last = now()
except zmq.Again:
    last = now() - 3_000_000_000  # the last message came before the 3 s timeout
print("DONE %d %d %d -1" % (count, first, last), flush=True)
if lats:
    lats.sort()
    k = len(lats)
    print("LAT %.1f %.1f %.1f %.1f" % (lats[k // 2] / 1e3, lats[k * 99 // 100] / 1e3, lats[k * 999 // 1000] / 1e3, lats[-1] / 1e3), flush=True)
