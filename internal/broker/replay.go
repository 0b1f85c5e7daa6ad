package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rsyslog-zmq/relay/internal/tap"
)

// ReplayConfig configures a replay of a stream for the tap.
type ReplayConfig struct {
	// Source is nats://[user:pass@]host:port/STREAM (tls:// for TLS); more
	// servers may be given comma-separated in the host part.
	Source string
	// Since, FromSeq and Last choose where to start (at most one): a time
	// ago, a stream sequence, or the last N messages. None: only new
	// messages, like the relay's live taps.
	Since   time.Duration
	FromSeq uint64
	Last    uint64
	// Follow keeps reading new messages after the replay reached what the
	// stream held at the start; without it a replay ends there.
	Follow bool
	Filter *tap.Filter
	Creds  string
	Logger *slog.Logger
}

// ErrEnd is returned by Replay.Recv once a replay without Follow reached
// the stream's last message as of its start.
var ErrEnd = errors.New("end of the replayed range")

// Replay reads a JetStream stream from a point in time, a sequence or the
// last N messages with an ordered, ephemeral consumer (no acks, nothing
// left on the server): the tap's source for nats:// URLs.
type Replay struct {
	cfg    ReplayConfig
	stream string
	nc     *nats.Conn
	it     jetstream.MessagesContext
	end    uint64 // last stream sequence at the start; 0: follow
	filter *tap.Filter

	received, bytes, skipped atomic.Uint64
}

// ParseReplaySource splits nats://host:port/STREAM into the server URL
// and the stream name.
func ParseReplaySource(src string) (server, stream string, err error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", "", fmt.Errorf("%w %q: %v", tap.ErrBadSource, src, err)
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return "", "", fmt.Errorf("%w %q: use nats://host:4222/STREAM", tap.ErrBadSource, src)
	}
	stream = strings.Trim(u.Path, "/")
	if stream == "" || strings.Contains(stream, "/") || u.Host == "" {
		return "", "", fmt.Errorf("%w %q: name the stream: nats://host:4222/STREAM", tap.ErrBadSource, src)
	}
	u.Path, u.RawPath = "", ""
	return u.String(), stream, nil
}

// NewReplay connects and positions an ordered consumer on the stream.
func NewReplay(ctx context.Context, cfg ReplayConfig) (*Replay, error) {
	server, stream, err := ParseReplaySource(cfg.Source)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, set := range []bool{cfg.Since > 0, cfg.FromSeq > 0, cfg.Last > 0} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("--since, --from-seq and --last exclude each other")
	}
	if cfg.Filter == nil {
		cfg.Filter = &tap.Filter{}
	}
	opts := []nats.Option{nats.Name("tap"), nats.Timeout(5 * time.Second), nats.MaxReconnects(-1)}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", redact(server), err)
	}
	r := &Replay{cfg: cfg, stream: stream, nc: nc, filter: cfg.Filter}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s does not exist on %s", stream, redact(server))
		}
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	oc := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case cfg.Since > 0:
		t := time.Now().Add(-cfg.Since)
		oc.DeliverPolicy, oc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case cfg.FromSeq > 0:
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	case cfg.Last > 0:
		first := uint64(1)
		if last >= cfg.Last {
			first = last - cfg.Last + 1
		}
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(first, st.CachedInfo().State.FirstSeq)
	}
	if n > 0 && !cfg.Follow {
		r.end = last
		if last == 0 || (cfg.FromSeq > last) {
			r.end = ^uint64(0) // nothing to replay: Recv ends at once
		}
	}
	cons, err := st.OrderedConsumer(ctx, oc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer on %s: %w", stream, err)
	}
	r.it, err = cons.Messages()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return r, nil
}

func redact(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.User == nil {
		return server
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// Recv returns the next message that passes the filter, ErrEnd after the
// replayed range (without Follow), or ctx's error.
func (r *Replay) Recv(ctx context.Context) (tap.Message, error) {
	if r.end == ^uint64(0) {
		return tap.Message{}, ErrEnd
	}
	for {
		if ctx.Err() != nil {
			return tap.Message{}, ctx.Err()
		}
		m, err := r.it.Next(jetstream.NextMaxWait(200 * time.Millisecond))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return tap.Message{}, tap.ErrClosed
			}
			return tap.Message{}, err
		}
		md, _ := m.Metadata()
		done := md != nil && r.end > 0 && md.Sequence.Stream >= r.end
		stream := ""
		if h := m.Headers(); h != nil {
			stream = h.Get(HeaderStream)
		}
		msg, derr := tap.Decode([]byte(stream), m.Data())
		if derr != nil {
			r.skipped.Add(1)
		} else if r.filter.Keep(msg.Event()) {
			r.received.Add(1)
			r.bytes.Add(uint64(len(m.Data())))
			if done {
				r.end = ^uint64(0)
			}
			return msg, nil
		}
		if done {
			r.end = ^uint64(0)
			return tap.Message{}, ErrEnd
		}
	}
}

// Stats returns the counters in the tap's shape.
func (r *Replay) Stats() tap.ConsumerStats {
	return tap.ConsumerStats{Received: r.received.Load(), Bytes: r.bytes.Load(), Skipped: r.skipped.Load()}
}

// Close stops the consumer and the connection.
func (r *Replay) Close() error {
	if r.it != nil {
		r.it.Stop()
	}
	r.nc.Close()
	return nil
}
