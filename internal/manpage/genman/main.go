// Command genman regenerates docs/man/ and the README's command block from
// the built binaries' --help and the relay's default config (make man).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rsyslog-zmq/relay/internal/manpage"
)

func main() {
	bin := flag.String("bin", "bin", "`DIR` holding the built relay, tap and omzmq-bridge")
	root := flag.String("root", ".", "repository `DIR` to write docs/man/ and README.md in")
	flag.Parse()
	s, err := manpage.FromBinaries(*bin)
	if err == nil {
		err = manpage.Write(*root, s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
}
