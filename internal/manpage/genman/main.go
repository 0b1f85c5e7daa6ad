// Command genman regenerates docs/man/ and the README's command block from
// the built binaries' --help and the relay's default config (make man), or,
// with -man DIR, writes only the man pages into DIR (the .deb build).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rsyslog-zmq/relay/internal/manpage"
)

func main() {
	bin := flag.String("bin", "bin", "`DIR` holding the built relay, tap and omzmq-bridge")
	root := flag.String("root", ".", "repository `DIR` to write docs/man/ and README.md in")
	manOnly := flag.String("man", "", "write only the man pages, into `DIR`")
	flag.Parse()
	s, err := manpage.FromBinaries(*bin)
	if err == nil {
		if *manOnly != "" {
			err = writeMan(*manOnly, s)
		} else {
			err = manpage.Write(*root, s)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
}

func writeMan(dir string, s manpage.Sources) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for path, data := range manpage.Files(s) {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
