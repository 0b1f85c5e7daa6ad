// Command tap prints or summarises a relay's live events. See tap --help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rsyslog-zmq/relay/internal/tap/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
