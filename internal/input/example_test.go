package input_test

import (
	"context"
	"fmt"
	"net"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/input"
)

func ExampleNewSyslog() {
	in, err := input.NewSyslog(input.SyslogConfig{
		Name:   "rsyslog",
		Listen: []string{"tcp://127.0.0.1:0"},
	}, nil)
	if err != nil {
		panic(err)
	}
	got := make(chan *event.Event, 1)
	// The Handler may block: that is backpressure. It owns the events,
	// not the slice.
	err = in.Start(func(batch []*event.Event) {
		for _, e := range batch {
			got <- e
		}
	})
	if err != nil {
		panic(err)
	}
	defer in.Stop(context.Background())

	conn, err := net.Dial("tcp", in.Addrs()[0].String())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "25 <13>1 - host app - - - hi")

	e := <-got
	fmt.Printf("%s from input %s\n", e.Raw, e.Input)
	// Output: <13>1 - host app - - - hi from input rsyslog
}
