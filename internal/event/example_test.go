package event_test

import (
	"fmt"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

func ExampleParseField() {
	e := event.New([]byte(`<165>1 2026-11-22T05:06:07Z web1 nginx 42 ID47 [origin@32473 ip="192.0.2.1"] {"user":{"name":"alice"}}`))
	for _, spec := range []string{"app-name", "facility", "sd:origin@32473.ip", "json:user.name"} {
		f, err := event.ParseField(spec)
		if err != nil {
			panic(err)
		}
		v, ok := f.Get(e)
		fmt.Println(spec, v, ok)
	}
	// Output:
	// app-name nginx true
	// facility local4 true
	// sd:origin@32473.ip 192.0.2.1 true
	// json:user.name alice true
}

func ExampleEvent_AppendJSON() {
	e := event.New([]byte(`<30>2026-11-22T05:06:07.123456+00:00 web1 sshd[4242]: Accepted publickey for alice`))
	e.Stream, e.Input = "sshd", "tcp514"
	e.Received = time.Date(2026, 11, 22, 5, 6, 7, 200000000, time.UTC)
	fmt.Println(string(e.AppendJSON(nil)))
	// Output:
	// {"stream":"sshd","format":"forward","facility":3,"severity":6,"timestamp":"2026-11-22T05:06:07.123456+00:00","hostname":"web1","app_name":"sshd","proc_id":"4242","message":"Accepted publickey for alice","input":"tcp514","received":"2026-11-22T05:06:07.2Z"}
}
