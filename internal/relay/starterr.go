package relay

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// startErr names the part (`input "x"`, `output "y"`) an error from
// starting it is about, unless the part already did (the inputs and most
// outputs name themselves), and says what to change when its address is
// taken, which the system's message alone does not.
func startErr(part string, err error) error {
	if err == nil {
		return nil
	}
	if !strings.HasPrefix(err.Error(), part+":") {
		err = fmt.Errorf("%s: %w", part, err)
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		err = fmt.Errorf("%w; another process (or another relay) listens there: stop it, or give %s a free port (`ss -ltnp` shows who holds it)", err, part)
	}
	return err
}
