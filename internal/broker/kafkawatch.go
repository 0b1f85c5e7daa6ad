package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// franz-go retries a produce for as long as it takes, by default: when
// the brokers refuse the SASL credentials or none can be reached, the
// records just wait inside the client, and no promise reports anything.
// The watch notices that records wait and nothing was confirmed for a
// while, asks the cluster why (a ping), and counts and logs the answer
// like a failed produce (cause auth or brokers); the spool keeps the
// events meanwhile. It also ends a failure episode once confirmations
// come again, which a produce that never failed would not.

// stallAfter is how long records may wait without a confirmation before
// the watch asks the cluster why.
func (k *Kafka) stallAfter() time.Duration {
	return min(max(4*k.cfg.RetryMax, 2*time.Second), 30*time.Second)
}

func (k *Kafka) startWatch() {
	k.wg.Add(1)
	go k.watchLoop()
}

func (k *Kafka) watchLoop() {
	defer k.wg.Done()
	every := k.stallAfter()
	tick := time.NewTicker(every / 2)
	defer tick.Stop()
	last := k.confirmed.Load()
	since := time.Now() // when confirmations last moved (or the watch began)
	for {
		select {
		case <-tick.C:
		case <-k.ctx.Done():
			if k.confirmed.Load() != last {
				k.causes.ok()
			}
			return
		}
		now := k.confirmed.Load()
		if now != last {
			last, since = now, time.Now()
			k.causes.ok()
			continue
		}
		if k.Stats().Pending == 0 || time.Since(since) < every {
			continue
		}
		since = time.Now() // the next probe after another stallAfter
		ctx, cancel := context.WithTimeout(k.ctx, every/2)
		err := k.cl.Ping(ctx)
		cancel()
		if err == nil || k.ctx.Err() != nil {
			continue
		}
		cause, hint := CauseBrokers, "check that the brokers are reachable (brokers, tls)"
		if k.cfg.SASL != nil {
			// Some brokers (kfake among them) close the connection on
			// bad SASL credentials instead of answering with an error.
			hint = "check that the brokers are reachable (brokers, tls) and accept the output's sasl credentials (mechanism, username, password)"
		}
		var ke *kerr.Error
		switch {
		case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnsupportedSaslMechanism),
			errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.ClusterAuthorizationFailed):
			cause, hint = CauseAuth, "check the output's sasl credentials (mechanism, username, password) against the brokers' and its ACLs"
		case errors.As(err, &ke):
			cause, hint = CauseOther, ""
		}
		k.causes.fail(cause, 1, err, hint)
	}
}
