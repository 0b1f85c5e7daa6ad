// Command zmq is bench/zmq.sh's Go side: one socket of internal/zmq
// sending or receiving 200-byte messages, printing its rate. The pyzmq
// (peer.py) and C (cref.c) references take the same flags.
//
//	zmq -role pull -bind tcp://127.0.0.1:0 -n 1000000
//	zmq -role push -connect tcp://127.0.0.1:5555 -n 1000000
//
// A binding role prints "READY <endpoint>" first. Senders wait for a "go"
// line on stdin, send, then wait for stdin to close. Receivers print
// "RATE <msg/s> RECV <n>"; pub prints "DROPS <n> MAXRSS_KB <kb>".
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

func main() {
	role := flag.String("role", "", "push, pull, pub, sub")
	bind := flag.String("bind", "", "endpoint to bind")
	connect := flag.String("connect", "", "endpoint to connect to")
	n := flag.Int("n", 1000000, "messages")
	size := flag.Int("size", 200, "message size, bytes")
	batch := flag.Int("batch", 1, "push: messages per SendBatch")
	subs := flag.Int("subs", 1, "pub: subscribers to wait for")
	stalled := flag.Int("stalled", 0, "pub: how many of the subscribers never read (pacing ignores the deepest queues)")
	stall := flag.Bool("stall", false, "sub: subscribe, then never read")
	hwm := flag.Int("hwm", 0, "HWM and RecvHWM (0: default)")
	curveServer := flag.String("curve-server", "", "CURVE server with this secret key (Z85), admitting any client")
	curveClient := flag.String("curve-client", "", "CURVE client keys SERVERKEY,PUBLIC,SECRET (Z85)")
	flag.Parse()

	o := zmq.Options{HWM: *hwm, RecvHWM: *hwm}
	if *curveServer != "" {
		sec, err := zmq.ParseCurveKey(*curveServer)
		if err != nil {
			fatal(err)
		}
		pub, err := zmq.CurvePublicKey(sec)
		if err != nil {
			fatal(err)
		}
		o.Security = zmq.CurveServer(zmq.CurveKeyPair{Public: pub, Secret: sec}, zmq.CurveAllowAny)
	}
	if *curveClient != "" {
		k := strings.Split(*curveClient, ",")
		if len(k) != 3 {
			fatal(fmt.Errorf("-curve-client wants SERVERKEY,PUBLIC,SECRET"))
		}
		var keys [3]zmq.CurveKey
		for i := range keys {
			var err error
			if keys[i], err = zmq.ParseCurveKey(k[i]); err != nil {
				fatal(err)
			}
		}
		o.Security = zmq.CurveClient(zmq.CurveKeyPair{Public: keys[1], Secret: keys[2]}, keys[0])
	}
	type sock interface {
		Listen(string) error
		Dial(string) error
		Close() error
	}
	var s sock
	var push *zmq.Push
	var pull *zmq.Pull
	var pub *zmq.Pub
	var sub *zmq.Sub
	switch *role {
	case "push":
		push = zmq.NewPush(o)
		s = push
	case "pull":
		pull = zmq.NewPull(o)
		s = pull
	case "pub":
		pub = zmq.NewPub(o)
		s = pub
	case "sub":
		sub = zmq.NewSub(o)
		sub.Subscribe("")
		s = sub
	default:
		fatal(fmt.Errorf("-role must be push, pull, pub or sub"))
	}
	defer s.Close()
	if *bind != "" {
		if err := s.Listen(*bind); err != nil {
			fatal(err)
		}
		fmt.Println("READY", endpoint(s.(interface{ Addrs() []net.Addr }).Addrs()[0]))
	}
	if *connect != "" {
		if err := s.Dial(*connect); err != nil {
			fatal(err)
		}
	}
	ctx := context.Background()
	payload := make([]byte, *size)
	switch *role {
	case "push":
		waitPeers(func() int { return push.Stats().Peers }, 1)
		waitGo()
		if *batch > 1 {
			ms := make([]zmq.Msg, *batch)
			for i := 0; i < *n; i += *batch {
				k := min(*batch, *n-i)
				for j := range k {
					ms[j] = zmq.Msg{payload}
				}
				if _, err := push.SendBatch(ctx, ms[:k]); err != nil {
					fatal(err)
				}
			}
		} else {
			for i := 0; i < *n; i++ {
				if err := push.Send(ctx, zmq.Msg{payload}); err != nil {
					fatal(err)
				}
			}
		}
		if err := push.Flush(ctx); err != nil {
			fatal(err)
		}
		waitStdin()
	case "pull":
		recv(func(ctx context.Context, buf []zmq.Msg) (int, error) { return pull.RecvBatch(ctx, buf) }, *n)
	case "sub":
		if *stall {
			waitStdin()
			return
		}
		recv(func(ctx context.Context, buf []zmq.Msg) (int, error) { return sub.RecvBatch(ctx, buf) }, *n)
	case "pub":
		waitPeers(func() int { return pub.Stats().Peers }, *subs)
		waitGo()
		limit := zmq.DefaultHWM / 2
		if *hwm > 0 {
			limit = *hwm / 2
		}
		for i := 0; i < *n; i++ {
			pub.Send(zmq.Msg{payload})
			if i%128 == 0 {
				// Pace to the subscribers that keep up (all but the
				// -stalled deepest queues), so their rate is what they can
				// take, not what they drop. The wait is bounded: early on a
				// stalled one's kernel buffers still take messages.
				for t0 := time.Now(); kthDepth(pub, *subs-*stalled) > limit && time.Since(t0) < 2*time.Millisecond; {
					time.Sleep(20 * time.Microsecond)
				}
			}
		}
		waitStdin()
		st := pub.Stats()
		fmt.Printf("DROPS %d MAXRSS_KB %d\n", st.Drops[zmq.DropPubQueueFull], maxRSS())
	}
}

func endpoint(a net.Addr) string {
	if a.Network() == "unix" {
		return "ipc://" + a.String()
	}
	return "tcp://" + a.String()
}

// kthDepth is the k-th shortest send queue among the subscribers.
func kthDepth(pub *zmq.Pub, k int) int {
	var d []int
	for _, p := range pub.Stats().PeerStats {
		d = append(d, p.QueueDepth)
	}
	if len(d) == 0 || k <= 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(k, len(d))-1]
}

// recv receives n messages (or stops 2s after traffic stops) and prints
// the rate from the first message to the last.
func recv(get func(context.Context, []zmq.Msg) (int, error), n int) {
	buf := make([]zmq.Msg, 256)
	got := 0
	var first, last time.Time
	for got < n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if got == 0 {
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		}
		k, err := get(ctx, buf)
		cancel()
		if err != nil {
			break
		}
		if got == 0 {
			first = time.Now()
		}
		got += k
		last = time.Now()
	}
	rate := 0.0
	if el := last.Sub(first).Seconds(); el > 0 {
		rate = float64(got-1) / el
	}
	fmt.Printf("RATE %.0f RECV %d\n", rate, got)
}

func waitPeers(peers func() int, n int) {
	for peers() < n {
		time.Sleep(5 * time.Millisecond)
	}
}

var stdin = bufio.NewScanner(os.Stdin)

// waitGo blocks until the script says "go" (all receivers connected and
// subscribed).
func waitGo() { stdin.Scan() }

// waitStdin blocks until stdin closes, so the script decides when the
// sending side may close (and drop what is still queued).
func waitStdin() {
	for stdin.Scan() {
	}
}

func maxRSS() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			fmt.Sscan(v, &kb)
			return kb
		}
	}
	return 0
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "zmq bench:", err)
	os.Exit(1)
}
