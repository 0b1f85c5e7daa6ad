package link

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// realistic returns n RFC 5424 events with structured data as an ad
// platform's rsyslog forwards them: 200 hosts, three streams, random user
// and request ids, campaign/ad/placement ids, client IPs, user agents,
// URLs with query strings, timestamps a few microseconds apart.
func realistic(n int, seed uint64) []spool.Record {
	r := rand.New(rand.NewPCG(seed, 1))
	apps := []string{"impression", "click", "conversion"}
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
	}
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	recs := make([]spool.Record, n)
	for i := range recs {
		app := apps[r.IntN(10)%3]
		if r.IntN(10) < 7 {
			app = "impression"
		}
		ts := t0.Add(time.Duration(i)*7*time.Microsecond + time.Duration(r.IntN(3000))*time.Microsecond)
		host := fmt.Sprintf("web%03d.fra2.adserve.example.net", r.IntN(200))
		raw := fmt.Sprintf(`<134>1 %s %s %s %d %s [ad@32473 user="%016x" req="%08x-%04x-%04x" campaign="%d" ad="%d" placement="%d" price="%.4f" ip="%d.%d.%d.%d"][ua@32473 v="%s"] GET /v2/%s?cid=%d&aid=%d&pid=%d&cb=%d&u=%016x HTTP/1.1 200 %d %dms`,
			ts.Format("2006-01-02T15:04:05.000000Z07:00"), host, app, 1000+r.IntN(30000), "ID"+fmt.Sprint(r.IntN(50)),
			r.Uint64(), r.Uint32(), r.IntN(65536), r.IntN(65536), 1000+r.IntN(400), 50000+r.IntN(20000), r.IntN(5000),
			r.Float64()*3, 10+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254), uas[r.IntN(len(uas))],
			app, 1000+r.IntN(400), 50000+r.IntN(20000), r.IntN(5000), r.Uint32(), r.Uint64(), 200+r.IntN(3000), r.IntN(80))
		recs[i] = spool.Record{Seq: uint64(i + 1), Raw: []byte(raw), Stream: app, Input: "rsyslog-relp",
			Peer: fmt.Sprintf("10.1.%d.%d:%d", r.IntN(4), r.IntN(256), 40000+r.IntN(20000)), Received: ts.Add(300 * time.Microsecond)}
	}
	return recs
}

// BenchmarkCompression compresses 4096-event batches of realistic RFC 5424
// traffic (our record encoding, 1.2 MB) with each candidate and reports
// the ratio and the decompression speed beside the compression speed.
//
//	go test -run XXX -bench Compression ./internal/link/
func BenchmarkCompression(b *testing.B) {
	recs := realistic(4096, 7)
	raw := encodeRecords(nil, 0, recs)
	type codec struct {
		name string
		enc  func(dst, src []byte) []byte
		dec  func(src []byte) []byte
	}
	zenc := func(l zstd.EncoderLevel) func(dst, src []byte) []byte {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(l), zstd.WithEncoderCRC(false))
		return func(dst, src []byte) []byte { return e.EncodeAll(src, dst[:0]) }
	}
	zd, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	zdec := func(src []byte) []byte { out, _ := zd.DecodeAll(src, nil); return out }
	fl := func(level int) func(dst, src []byte) []byte {
		return func(dst, src []byte) []byte {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, level)
			w.Write(src)
			w.Close()
			return buf.Bytes()
		}
	}
	fdec := func(src []byte) []byte {
		var out bytes.Buffer
		out.ReadFrom(flate.NewReader(bytes.NewReader(src)))
		return out.Bytes()
	}
	s2dec := func(src []byte) []byte { out, _ := s2.Decode(nil, src); return out }
	codecs := []codec{
		{"zstd-fastest", zenc(zstd.SpeedFastest), zdec},
		{"zstd-default", zenc(zstd.SpeedDefault), zdec},
		{"zstd-better", zenc(zstd.SpeedBetterCompression), zdec},
		{"s2", func(dst, src []byte) []byte { return s2.Encode(dst[:0], src) }, s2dec},
		{"s2-better", func(dst, src []byte) []byte { return s2.EncodeBetter(dst[:0], src) }, s2dec},
		{"snappy(s2)", func(dst, src []byte) []byte { return s2.EncodeSnappy(dst[:0], src) }, s2dec},
		{"flate-1", fl(1), fdec},
		{"flate-6", fl(6), fdec},
	}
	for _, c := range codecs {
		out := c.enc(nil, raw)
		if !bytes.Equal(c.dec(out), raw) {
			b.Fatalf("%s does not round-trip", c.name)
		}
		b.Run(c.name+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			var dst []byte
			for b.Loop() {
				dst = c.enc(dst, raw)
			}
			b.ReportMetric(float64(len(raw))/float64(len(out)), "ratio")
			b.ReportMetric(float64(len(out))/4096, "wireB/event")
		})
		b.Run(c.name+"/decompress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				c.dec(out)
			}
		})
	}
}
