// Command consumer-go is the seeds' summarizer in miniature: it taps a
// relay (PUB endpoint or websocket) with the tap consumer library and
// keeps, per stream, an event count and a HyperLogLog of unique users.
//
//	go run ./examples/consumer-go -source tcp://127.0.0.1:5556 -user sd:user@32473.id
//
// It prints a summary every -every and on Ctrl-C, or after -n events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/tap"
)

type summary struct {
	events uint64
	users  *hyperloglog.Sketch
}

func main() {
	source := flag.String("source", "tcp://127.0.0.1:5556", "relay PUB endpoint or ws:// websocket")
	userField := flag.String("user", "sd:user@32473.id", "field that identifies a user (see event.ParseField)")
	every := flag.Duration("every", 5*time.Second, "print the summary this often")
	limit := flag.Uint64("n", 0, "stop after this many events (0: run until Ctrl-C)")
	token := flag.String("token", os.Getenv("TAP_TOKEN"), "websocket tap token")
	flag.Parse()

	user, err := event.ParseField(*userField)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer-go:", err)
		os.Exit(2)
	}
	c, err := tap.NewConsumer(tap.ConsumerConfig{Source: *source, Token: *token})
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer-go:", err)
		os.Exit(2)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	sums := map[string]*summary{}
	next := time.Now().Add(*every)
	var total uint64
	for *limit == 0 || total < *limit {
		m, err := c.Recv(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "consumer-go:", err)
			}
			break
		}
		s := sums[m.Stream]
		if s == nil {
			s = &summary{users: hyperloglog.New16()}
			sums[m.Stream] = s
		}
		s.events++
		if u, ok := user.Get(m.Event()); ok {
			s.users.Insert([]byte(u))
		}
		total++
		if time.Now().After(next) {
			print(sums)
			next = time.Now().Add(*every)
		}
	}
	print(sums)
}

func print(sums map[string]*summary) {
	names := make([]string, 0, len(sums))
	for k := range sums {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Printf("%s events=%d unique_users=%d\n", k, sums[k].events, sums[k].users.Estimate())
	}
}
