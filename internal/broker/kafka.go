package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// Kafka record headers: the event's metadata, and its stable id (the same
// as a JetStream output's message id) so that consumers can drop the
// redeliveries an at-least-once path may bring.
const (
	KafkaHeaderID       = "relay-id"
	KafkaHeaderStream   = "relay-stream"
	KafkaHeaderInput    = "relay-input"
	KafkaHeaderPeer     = "relay-peer"
	KafkaHeaderReceived = "relay-received"
)

// Failure causes of a Kafka produce.
const (
	CauseUnknownTopic = "unknown_topic" // the topic does not exist and is not created
	CauseBrokers      = "brokers"       // no broker reachable, or a request failed
)

// KafkaSASL are SASL credentials: Mechanism PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512.
type KafkaSASL struct {
	Mechanism string
	User      string
	Password  string
}

// KafkaConfig configures a Kafka output.
type KafkaConfig struct {
	Name    string
	Brokers []string
	// Topic is a topic name, or a template with {stream}. With one topic,
	// the event's stream is the record's key (one stream stays in one
	// partition, in order).
	Topic string
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string
	TLS         *tls.Config
	SASL        *KafkaSASL
	// CreateTopics lets the client ask the brokers to create a missing
	// topic (they must allow it: auto.create.topics.enable).
	CreateTopics bool
	JSON         bool
	// MaxPending bounds the records produced and not yet acknowledged
	// (default 4096).
	MaxPending int
	// RetryMax caps the backoff before a failed record is produced again
	// (default 5s).
	RetryMax time.Duration
	SpoolID  string
	// MsgID, if set, gives a record's relay-id instead (as JetStream's).
	MsgID  func(r *spool.Record) string
	Sent   func(rs ...spool.Range) error
	Logger *slog.Logger
}

// KafkaStats are a Kafka output's counters.
type KafkaStats struct {
	Produced  uint64            // produce attempts
	Confirmed uint64            // records the brokers acknowledged (acks=all)
	Resent    uint64            // records produced again after a failed attempt: each may be a duplicate
	Failed    map[string]uint64 // failed attempts by cause
	DataLoss  uint64            // partitions where the client detected data loss on the brokers
	Pending   int
}

// Kafka is the Kafka output's Sender: franz-go's idempotent producer
// with acks=all. At least once: a record whose produce failed (the
// brokers may have it) is produced again and counted in Resent; records
// on the wire when the relay died are produced again after the restart
// and counted by the spool (Redelivered).
type Kafka struct {
	cfg    KafkaConfig
	log    *slog.Logger
	cl     *kgo.Client
	single bool // one topic, the stream as key

	mu       sync.Mutex
	inflight int  // records produced and not acknowledged: the window
	waiting  bool // Send waits for room in the window
	room     chan struct{}
	retry    []*kgo.Record
	acks     *acks // confirmed seqs, handed to the spool
	idle     chan struct{}

	wakeRetry chan struct{}
	unlinger  chan struct{} // take found the window full: flush franz-go's lingering batches
	free      chan *batchBuf
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	causes                      *causes
	bo                          backoff
	produced, confirmed, resent atomic.Uint64
	dataLoss                    atomic.Uint64
	topicMu                     sync.Mutex
	topics                      map[string]string
	retried                     atomic.Bool // a retry ran since the last confirmation: reset the backoff
	// Send's goroutine only: the bytes of header values, and the
	// formatted second of the last received time.
	strs    map[string][]byte
	lastStr [3]struct {
		s string
		b []byte
	}
	recvSec  int64
	recvDate []byte
}

// NewKafka builds the producer. Brokers are contacted lazily: an
// unreachable cluster does not stop the start (the spool takes the
// events, failures are counted and logged).
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if err := checkKafkaBrokers(cfg.Brokers); err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	k := &Kafka{
		cfg:       cfg,
		log:       cfg.Logger.With("output", cfg.Name),
		single:    !strings.Contains(cfg.Topic, "{stream}"),
		room:      make(chan struct{}, 1),
		wakeRetry: make(chan struct{}, 1),
		unlinger:  make(chan struct{}, 1),
		free:      make(chan *batchBuf, freeBufs),
		acks:      newAcks(),
		bo:        backoff{min: 100 * time.Millisecond, max: cfg.RetryMax},
		topics:    map[string]string{},
		strs:      map[string][]byte{},
	}
	k.causes = newCauses(k.log)
	k.ctx, k.cancel = context.WithCancel(context.Background())
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("relay-" + cfg.Name),
		kgo.RequiredAcks(kgo.AllISRAcks()), // and the idempotent producer (franz-go's default)
		kgo.MaxBufferedRecords(2 * cfg.MaxPending),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.UnknownTopicRetries(4),
		// Data loss on the brokers (OUT_OF_ORDER_SEQUENCE or
		// UNKNOWN_PRODUCER_ID for records they had acknowledged) cannot be
		// undone by the relay: the spool let go of those records. Stopping
		// the producer would stop every other topic as well, so it goes on
		// and the loss is logged as an error and counted.
		kgo.ProducerOnDataLossDetected(func(topic string, partition int32) {
			k.dataLoss.Add(1)
			k.log.Error("Kafka reported data loss: records it had acknowledged are gone from the brokers (unclean leader election or truncated log); replay them from the source if it can",
				"topic", topic, "partition", partition)
		}),
	}
	switch strings.ToLower(cfg.Compression) {
	case "", "none":
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, fmt.Errorf("output %q: compression %q is not known; use none, gzip, snappy, lz4 or zstd", cfg.Name, cfg.Compression)
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.SASL != nil {
		m, err := saslMechanism(*cfg.SASL)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
		}
		opts = append(opts, kgo.SASL(m))
	}
	if cfg.CreateTopics {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", cfg.Name, err)
	}
	k.cl = cl
	k.wg.Add(3)
	go k.retryLoop()
	go k.flushLoop()
	go func() { defer k.wg.Done(); k.acks.loop(k.ctx) }()
	k.startWatch()
	return k, nil
}

func saslMechanism(s KafkaSASL) (sasl.Mechanism, error) {
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("sasl mechanism %q is not known; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

func (k *Kafka) topic(stream string) string {
	if k.single {
		return k.cfg.Topic
	}
	k.topicMu.Lock()
	defer k.topicMu.Unlock()
	if t, ok := k.topics[stream]; ok {
		return t
	}
	t := strings.ReplaceAll(k.cfg.Topic, "{stream}", topicName(stream))
	if len(k.topics) < 4096 {
		k.topics[stream] = t
	}
	return t
}

// topicName makes a stream name a legal part of a topic name (letters,
// digits, '.', '_', '-').
func topicName(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// batchBuf holds the memory of one chunk of records: the records, their
// headers, their spool seqs and the bytes of their ids and times, one
// slice each instead of allocations per record. Once the brokers
// confirmed every record of the chunk (franz-go is done with a record
// when its promise runs), the chunk's buffer is used again for a later
// chunk: allocating, zeroing and collecting ~0.5 KiB per record cost
// more CPU than the rest of building it.
type batchBuf struct {
	recs []kgo.Record
	ctxs []recCtx
	hdrs []kgo.RecordHeader
	slab []byte
	// left counts the records not yet confirmed; a failed record keeps
	// its place (its retry refers to the chunk's headers and context).
	left atomic.Int64
}

// recCtx is a produced record's Context (franz-go's field for enriching
// records): the output's context, for cancellation at Close, the
// record's spool seq, which the promise acks, and its chunk. It saves a
// map from record to seq, written and read once per record.
type recCtx struct {
	context.Context
	seq uint64
	bb  *batchBuf
}

// freeBufs bounds the chunk buffers kept for reuse: the window holds at
// most MaxPending records, i.e. a few chunks of a spool read.
const freeBufs = 8

// getBuf returns an empty buffer with room for n records.
func (k *Kafka) getBuf(n int) *batchBuf {
	var bb *batchBuf
	select {
	case bb = <-k.free:
	default:
		bb = &batchBuf{}
	}
	if cap(bb.recs) < n {
		bb.recs, bb.hdrs = make([]kgo.Record, 0, n), make([]kgo.RecordHeader, 0, 5*n)
		if cap(bb.slab) < 64*n {
			bb.slab = make([]byte, 0, 64*n)
		}
		// A record's Context is written here only, and only its seq
		// later: franz-go may still read a finished record's Context (a
		// goroutine waiting for an unknown topic selects on its Done),
		// which must not see it change.
		bb.ctxs = make([]recCtx, n)
		for i := range bb.ctxs {
			bb.ctxs[i] = recCtx{Context: k.ctx, bb: bb}
		}
	}
	bb.recs, bb.hdrs, bb.slab = bb.recs[:0], bb.hdrs[:0], bb.slab[:0]
	bb.left.Store(int64(n))
	return bb
}

// done counts a confirmed record of bb and frees bb after the last.
func (k *Kafka) done(bb *batchBuf) {
	if bb.left.Add(-1) != 0 {
		return
	}
	select {
	case k.free <- bb:
	default:
	}
}

// bytesOf returns s as bytes, shared across records: header values are
// read-only to franz-go. Send's goroutine only. slot (stream, input,
// peer) keeps the last value of each: consecutive records mostly share
// them, and comparing saves the map's hashing.
func (k *Kafka) bytesOf(slot int, s string) []byte {
	l := &k.lastStr[slot]
	if l.b != nil && l.s == s {
		return l.b
	}
	b := k.bytesOfMap(s)
	l.s, l.b = s, b
	return b
}

func (k *Kafka) bytesOfMap(s string) []byte {
	if b, ok := k.strs[s]; ok {
		return b
	}
	b := []byte(s)
	if len(k.strs) < 4096 {
		k.strs[s] = b
	}
	return b
}

func (k *Kafka) msgID(r *spool.Record) string {
	if k.cfg.MsgID == nil {
		return ""
	}
	return k.cfg.MsgID(r)
}

// appendReceived appends t as time.RFC3339Nano in UTC. Events arrive
// many per second: the date and time up to the second are formatted once
// per second, the fraction by hand. Send's goroutine only.
func (k *Kafka) appendReceived(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if k.recvDate == nil || sec != k.recvSec {
		u := t.UTC()
		if y := u.Year(); y < 0 || y > 9999 {
			return u.AppendFormat(b, time.RFC3339Nano)
		}
		k.recvSec, k.recvDate = sec, u.AppendFormat(k.recvDate[:0], "2006-01-02T15:04:05")
	}
	b = append(b, k.recvDate...)
	if ns := t.Nanosecond(); ns != 0 {
		var f [10]byte
		f[0] = '.'
		for i := 9; i > 0; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, 'Z')
}

func (k *Kafka) record(r *spool.Record, bb *batchBuf) *kgo.Record {
	value := r.Raw
	if k.cfg.JSON {
		e := event.New(r.Raw)
		e.Stream, e.Input, e.Peer, e.Received = r.Stream, r.Input, r.Peer, r.Received
		value = e.AppendJSON(make([]byte, 0, 2*len(r.Raw)+256))
	}
	h0 := len(bb.hdrs)
	start := len(bb.slab)
	if id := k.msgID(r); id != "" {
		bb.slab = append(bb.slab, id...)
	} else {
		bb.slab = append(bb.slab, k.cfg.SpoolID...)
		bb.slab = append(bb.slab, '-')
		bb.slab = strconv.AppendUint(bb.slab, r.Seq, 10)
	}
	stream := k.bytesOf(0, r.Stream)
	bb.hdrs = append(bb.hdrs, kgo.RecordHeader{Key: KafkaHeaderID, Value: bb.slab[start:len(bb.slab):len(bb.slab)]},
		kgo.RecordHeader{Key: KafkaHeaderStream, Value: stream})
	if r.Input != "" {
		bb.hdrs = append(bb.hdrs, kgo.RecordHeader{Key: KafkaHeaderInput, Value: k.bytesOf(1, r.Input)})
	}
	if r.Peer != "" {
		bb.hdrs = append(bb.hdrs, kgo.RecordHeader{Key: KafkaHeaderPeer, Value: k.bytesOf(2, r.Peer)})
	}
	if !r.Received.IsZero() {
		start = len(bb.slab)
		bb.slab = k.appendReceived(bb.slab, r.Received)
		bb.hdrs = append(bb.hdrs, kgo.RecordHeader{Key: KafkaHeaderReceived, Value: bb.slab[start:len(bb.slab):len(bb.slab)]})
	}
	rc := &bb.ctxs[len(bb.recs)]
	rc.seq = r.Seq
	bb.recs = append(bb.recs, kgo.Record{Topic: k.topic(r.Stream), Value: value, Headers: bb.hdrs[h0:len(bb.hdrs):len(bb.hdrs)], Timestamp: r.Received,
		Context: rc})
	rec := &bb.recs[len(bb.recs)-1]
	if k.single {
		rec.Key = stream
	}
	return rec
}

// Send produces recs, blocking while MaxPending records wait for their
// acknowledgement. ack is called from another goroutine for the seqs the
// brokers acknowledged.
func (k *Kafka) Send(ctx context.Context, recs []spool.Record, ack func(first, last uint64)) error {
	k.acks.setFunc(ack)
	for i := 0; i < len(recs); {
		n, err := k.take(ctx, len(recs)-i)
		if err != nil {
			return err
		}
		chunk := recs[i : i+n]
		bb := k.getBuf(n)
		for j := range chunk {
			k.record(&chunk[j], bb)
		}
		if k.cfg.Sent != nil {
			if err := k.cfg.Sent(spool.Range{First: chunk[0].Seq, Last: chunk[n-1].Seq}); err != nil && !errors.Is(err, spool.ErrClosed) {
				k.log.Warn("spool: marking records sent failed; a crash now would not count their redelivery", "err", err)
			}
		}
		k.produced.Add(uint64(n))
		for j := range bb.recs {
			k.cl.Produce(k.ctx, &bb.recs[j], k.promise)
		}
		i += n
	}
	return nil
}

// take waits for room in the window of unacknowledged records and takes
// at least one and at most n places of it. Once the window was full, it
// waits until a quarter of it is free, so that the chunks it hands out
// stay large: a chunk costs its allocations and a Sent of the spool.
func (k *Kafka) take(ctx context.Context, n int) (int, error) {
	k.mu.Lock()
	for k.inflight >= k.cfg.MaxPending {
		k.waiting = true
		k.mu.Unlock()
		select {
		case k.unlinger <- struct{}{}:
		default:
		}
		select {
		case <-k.room:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-k.ctx.Done():
			return 0, spool.ErrClosed
		}
		k.mu.Lock()
	}
	n = min(n, k.cfg.MaxPending-k.inflight)
	k.inflight += n
	if k.idle == nil {
		k.idle = make(chan struct{})
	}
	k.mu.Unlock()
	return n, nil
}

// flushLoop ends franz-go's linger while the window is full. The linger
// (ProducerLinger) lets a partition's batch wait for more records, which
// pays at low rates; but with the window full no more records come until
// acknowledgements do, so a batch that lingers only stalls the window
// (the window's last records waited the whole linger, every round). A
// producer blocked in franz-go's own buffer limit has the same effect
// (franz-go stops lingering while a Produce is blocked); the window here
// is ours, so a Flush stops the linger instead: while it runs, no batch
// lingers, and it returns once everything produced is acknowledged, when
// the linger is back for the next, slower, records.
func (k *Kafka) flushLoop() {
	defer k.wg.Done()
	for {
		select {
		case <-k.unlinger:
		case <-k.ctx.Done():
			return
		}
		k.cl.Flush(k.ctx) // the error is k.ctx's: closing
	}
}

// promise runs on franz-go's goroutine, one at a time: it must not block.
func (k *Kafka) promise(r *kgo.Record, err error) {
	rc, ok := r.Context.(*recCtx)
	if !ok {
		return // not produced by Send: cannot happen
	}
	if err != nil {
		if k.ctx.Err() != nil {
			return // closing: the record stays in the spool
		}
		k.mu.Lock()
		k.retry = append(k.retry, r) // still in the window
		k.mu.Unlock()
		cause, hint := classifyKafka(err, r.Topic)
		k.causes.fail(cause, 1, err, hint)
		select {
		case k.wakeRetry <- struct{}{}:
		default:
		}
		return
	}
	k.mu.Lock()
	k.inflight--
	k.acks.add(rc.seq)
	if k.inflight == 0 && k.idle != nil {
		close(k.idle)
		k.idle = nil
	}
	wake := k.waiting && k.inflight <= k.cfg.MaxPending-max(1, k.cfg.MaxPending/4)
	if wake {
		k.waiting = false
	}
	k.mu.Unlock()
	if wake {
		select {
		case k.room <- struct{}{}:
		default:
		}
	}
	k.confirmed.Add(1)
	k.done(rc.bb)
	if k.retried.Load() && k.retried.CompareAndSwap(true, false) {
		k.bo.reset()
	}
	// Also when no retry ran: the watch counts refusals while records
	// wait without any failed produce, and an episode left open would
	// keep the next outage of that cause from being logged.
	k.causes.ok()
}

func classifyKafka(err error, topic string) (cause, hint string) {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return CauseUnknownTopic, fmt.Sprintf("topic %s does not exist and the brokers do not create it; create it (kafka-topics.sh --create --topic %s --replication-factor 3), or allow auto.create.topics.enable and set create_topics", topic, topic)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return CauseTooLarge, "raise the topic's max.message.bytes above the inputs' max_message_size"
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return CauseAuth, "check the output's sasl credentials and its ACLs (WRITE and IDEMPOTENT_WRITE)"
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded):
		return CauseTimeout, ""
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return CauseOther, ""
	}
	return CauseBrokers, "check that the brokers are reachable"
}

// retryLoop produces failed records again, as new records (the brokers
// may hold the failed attempt: each is counted in Resent).
func (k *Kafka) retryLoop() {
	defer k.wg.Done()
	for {
		select {
		case <-k.wakeRetry:
		case <-k.ctx.Done():
			return
		}
		t := time.NewTimer(k.bo.next())
		k.retried.Store(true) // after next: the next confirmation resets it
		select {
		case <-t.C:
		case <-k.ctx.Done():
			t.Stop()
			return
		}
		k.mu.Lock()
		old := k.retry
		k.retry = nil
		k.mu.Unlock()
		again := make([]*kgo.Record, 0, len(old))
		for _, r := range old {
			// A new record (franz-go has finished with the failed one),
			// with the same seq: it keeps its place in the window.
			again = append(again, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp, Context: r.Context})
		}
		for _, r := range again {
			k.resent.Add(1)
			k.produced.Add(1)
			k.cl.Produce(k.ctx, r, k.promise)
		}
	}
}

// Close waits, within ctx, for the acknowledgements of what was produced,
// then closes the client. What is not acknowledged stays in the spool.
func (k *Kafka) Close(ctx context.Context) error {
	k.closeOnce.Do(func() {
		k.mu.Lock()
		idle := k.idle
		left := k.inflight
		k.mu.Unlock()
		if idle != nil && left > 0 {
			select {
			case <-idle:
			case <-ctx.Done():
			}
		}
		k.cancel()
		k.wg.Wait()
		k.cl.Close()
		k.mu.Lock()
		left = k.inflight
		k.mu.Unlock()
		if left > 0 {
			k.log.Info("closing with records unacknowledged; they stay in the spool and are produced again at the next start (counted as redelivered)", "records", left)
		}
	})
	return nil
}

// Stats returns the output's counters.
func (k *Kafka) Stats() KafkaStats {
	k.mu.Lock()
	pending := k.inflight
	k.mu.Unlock()
	return KafkaStats{
		Produced:  k.produced.Load(),
		Confirmed: k.confirmed.Load(),
		Resent:    k.resent.Load(),
		Failed:    k.causes.snapshot(),
		DataLoss:  k.dataLoss.Load(),
		Pending:   pending,
	}
}

// acquire takes at least one and at most n tokens of sem, waiting for the
// first while ctx and life last.
func acquire(ctx, life context.Context, sem chan struct{}, n int) (int, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-life.Done():
		return 0, spool.ErrClosed
	}
	got := 1
	for got < n {
		select {
		case sem <- struct{}{}:
			got++
		default:
			return got, nil
		}
	}
	return got, nil
}
