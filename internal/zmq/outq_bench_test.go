package zmq

import (
	"strconv"
	"testing"
)

// BenchmarkOutqNewPeer is what a new PUB subscriber's queue costs until
// it holds a full hwm: batches of 256 (the relay's input batch) pushed
// and swapped out as the peer's writer does, twice the hwm in all, so
// both of the queue's arrays fill once. A tap connecting at saturation
// does this once per connection; allocs/op and B/op show the arrays'
// growth.
func BenchmarkOutqNewPeer(b *testing.B) {
	for _, hwm := range []int{1000, 200000} {
		b.Run("hwm="+strconv.Itoa(hwm), func(b *testing.B) {
			batch := make([]Msg, 256)
			for i := range batch {
				batch[i] = Msg{[]byte("click"), make([]byte, 100)}
			}
			b.ReportAllocs()
			for b.Loop() {
				q := newOutq(hwm)
				var spare []qmsg
				for range 2 {
					for q.pushMany(batch, nil) > 0 {
					}
					msgs, _ := q.take(spare, nil)
					if len(msgs) != hwm {
						b.Fatalf("took %d, want the hwm %d", len(msgs), hwm)
					}
					clear(msgs)
					spare = msgs[:0]
				}
			}
		})
	}
}
