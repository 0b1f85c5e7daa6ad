package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestUniqueWithin2Percent(t *testing.T) {
	s := NewSet(true, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	truth := map[string]map[string]bool{"click": {}, "view": {}}
	for range 200000 {
		stream := "click"
		if rng.IntN(3) == 0 {
			stream = "view"
		}
		u := fmt.Sprintf("user-%d", rng.IntN(50000))
		truth[stream][u] = true
		s.Add(stream, 100, u, true, "", false)
	}
	for _, r := range s.Rows(time.Now()) {
		want := float64(len(truth[r.Stream]))
		if e := math.Abs(float64(r.Unique)-want) / want; e > 0.02 {
			t.Errorf("%s: estimate %d, truth %.0f (error %.2f%%)", r.Stream, r.Unique, want, 100*e)
		}
	}
}

func TestTopKExactOnSkew(t *testing.T) {
	tk := NewTopK(40)
	// Zipf-like: value i appears 1000/i times, interleaved.
	want := map[string]uint64{}
	for round := 0; ; round++ {
		added := false
		for i := 1; i <= 200; i++ {
			if uint64(round) < 1000/uint64(i) {
				v := fmt.Sprintf("v%d", i)
				tk.Add(v)
				want[v]++
				added = true
			}
		}
		if !added {
			break
		}
	}
	top := tk.Top(5)
	for i, c := range top {
		v := fmt.Sprintf("v%d", i+1)
		if c.Value != v || c.Count-c.Error > want[v] || c.Count < want[v] {
			t.Errorf("top[%d] = %+v, want %s with count %d within the error bound", i, c, v, want[v])
		}
	}
}

func TestRatesAndOrder(t *testing.T) {
	s := NewSet(false, 3)
	t0 := s.start
	for i := range 30 {
		s.Add("a", 10, "", false, fmt.Sprint(i%2), true)
	}
	for range 10 {
		s.Add("b", 5, "", false, "x", true)
	}
	s.Tick(t0.Add(2 * time.Second))
	rows := s.Rows(t0.Add(2 * time.Second))
	if len(rows) != 2 || rows[0].Stream != "a" || rows[1].Stream != "b" {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].Rate != 15 || rows[0].ByteRate != 150 || rows[1].Rate != 5 {
		t.Errorf("rates %+v", rows)
	}
	if len(rows[0].Top) != 2 || rows[0].Top[0].Count != 15 || rows[1].Top[0] != (Count{Value: "x", Count: 10}) {
		t.Errorf("top %+v %+v", rows[0].Top, rows[1].Top)
	}
}
