package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

const keygenUsage = `Usage:
  relay keygen [-meta name=value]... NAME

Writes a new CURVE key pair as czmq certificates, the files rsyslog's
omczmq/imczmq, pyzmq's zmq.auth and the relay's curve settings read:
  NAME.key         the public certificate (mode 0644): give it to peers,
                   put it in a CURVE server's allow_dir
  NAME.key_secret  the secret certificate (mode 0600): key_file of this side
Existing files are never replaced. Prints the public key (Z85).

Flags:
`

// keygen runs `relay keygen`.
func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := map[string]string{}
	fs.Func("meta", "metadata `name=value` for the certificates, repeatable", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return errors.New("want name=value")
		}
		meta[k] = v
		return nil
	})
	fs.Usage = func() {
		fmt.Fprint(stderr, keygenUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "relay keygen: want one NAME, e.g. relay keygen /etc/relay/curve/relay")
		return 2
	}
	name := strings.TrimSuffix(strings.TrimSuffix(fs.Arg(0), "_secret"), ".key") + ".key"
	if dir := filepath.Dir(name); !isDir(dir) {
		fmt.Fprintf(stderr, "relay keygen: directory %s does not exist; create it first (mkdir -p %s), readable by the relay's user\n", dir, dir)
		return 1
	}
	kp, err := zmq.NewCurveKeyPair()
	if err != nil {
		fmt.Fprintln(stderr, "relay keygen:", err)
		return 1
	}
	if err := zmq.WriteCurveCerts(name, kp, meta, time.Now()); err != nil {
		fmt.Fprintln(stderr, "relay keygen:", err)
		return 1
	}
	fmt.Fprintf(stdout, "public key %s\nwrote %s (public) and %s_secret (secret, mode 0600)\n", kp.Public.Z85(), name, name)
	return 0
}

func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
