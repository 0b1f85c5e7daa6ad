package testpeer

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy for link tests and benchmarks: it forwards
// connections to a target and can blackhole them (forward nothing, both
// ways, while connections stay open and new ones are accepted and left
// hanging), reset every connection, throttle to a bandwidth, and delay each
// direction (there is no netem on this kernel).
type Proxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	black  atomic.Bool
	rate   atomic.Int64 // bytes/s per direction per connection; 0: unlimited
	delay  atomic.Int64 // one-way delay, ns

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	// Accepted counts connections accepted.
	Accepted atomic.Int64
}

// NewProxy listens on 127.0.0.1 (a free port) and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.target.Store(&target)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes where new connections go.
func (p *Proxy) SetTarget(t string) { p.target.Store(&t) }

// Blackhole starts (true) or ends (false) a blackhole.
func (p *Proxy) Blackhole(on bool) { p.black.Store(on) }

// Throttle limits each direction of each connection to bytesPerSec (0:
// no limit).
func (p *Proxy) Throttle(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// Delay holds every chunk for d before forwarding it (each direction).
func (p *Proxy) Delay(d time.Duration) { p.delay.Store(int64(d)) }

// Reset closes every open connection with a TCP reset.
func (p *Proxy) Reset() {
	p.mu.Lock()
	cs := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Reset()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.Accepted.Add(1)
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	// A connection accepted during a blackhole waits (the peer's handshake
	// times out) until the blackhole ends or the connection is reset.
	for p.black.Load() {
		if !p.alive(c) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	u, err := net.DialTimeout("tcp", *p.target.Load(), 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(u) {
		return
	}
	defer p.untrack(u)
	done := make(chan struct{}, 2)
	go func() { p.pipe(u, c); done <- struct{}{} }()
	go func() { p.pipe(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
}

func (p *Proxy) alive(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.conns[c]
	return ok && !p.closed
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst through the blackhole, throttle and delay.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	var sentAt time.Time // throttle: when the bytes sent so far may have left
	for ch := range q {
		for p.black.Load() {
			if !p.alive(dst) {
				src.Close()
				drain(q)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Duration(p.delay.Load()); d > 0 {
			time.Sleep(time.Until(ch.at.Add(d)))
		}
		b := ch.b
		for len(b) > 0 {
			n := len(b)
			if r := p.rate.Load(); r > 0 {
				n = min(n, int(max(r/100, 512)))
				now := time.Now()
				if sentAt.Before(now) {
					sentAt = now
				}
				sentAt = sentAt.Add(time.Duration(float64(n) / float64(r) * float64(time.Second)))
				time.Sleep(time.Until(sentAt))
			}
			if _, err := dst.Write(b[:n]); err != nil {
				src.Close()
				drain(q)
				return
			}
			b = b[n:]
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func drain(q chan chunk) {
	for range q {
	}
}
