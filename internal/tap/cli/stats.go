package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rsyslog-zmq/relay/internal/broker"
	"github.com/rsyslog-zmq/relay/internal/tap/stats"
)

// runStats reads events into per-stream statistics, redraws the table
// every interval, and prints a summary when ctx ends (Ctrl-C), --for
// elapses or --limit events were counted.
func (r *runner) runStats(ctx context.Context) error {
	if r.o.dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.o.dur)
		defer cancel()
	}
	set := stats.NewSet(r.uniq != nil, r.o.topK)
	if r.top == nil {
		set = stats.NewSet(r.uniq != nil, 0)
	}
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.o.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mu.Lock()
				set.Tick(now)
				rows := set.Rows(now)
				mu.Unlock()
				if r.tty {
					fmt.Fprint(r.stdout, "\033[H\033[2J") // home, clear
				}
				r.table(r.stdout, rows, false)
			}
		}
	}()
	var runErr error
	var n int64
	for r.o.limit == 0 || n < r.o.limit {
		m, err := r.consumer.Recv(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, broker.ErrEnd) {
				runErr = err
			}
			break
		}
		var u, tv string
		var hasU, hasT bool
		if r.uniq != nil {
			u, hasU = r.uniq.Get(m.Event())
		}
		if r.top != nil {
			tv, hasT = r.top.Get(m.Event())
		}
		mu.Lock()
		set.Add(m.Stream, m.Size(), u, hasU, tv, hasT)
		mu.Unlock()
		n++
	}
	close(done)
	wg.Wait()
	now := time.Now()
	set.Tick(now)
	fmt.Fprintln(r.stdout, "\nsummary:")
	r.table(r.stdout, set.Rows(now), true)
	return runErr
}

// table prints one row per stream and a total. The summary shows average
// rates since the start instead of the last interval's.
func (r *runner) table(w io.Writer, rows []stats.Row, summary bool) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head := "STREAM\tEVENTS\tEV/S\tBYTES/S\tDROPS\t"
	if r.uniq != nil {
		head += "UNIQUE " + r.o.unique + "\t"
	}
	fmt.Fprintln(tw, head)
	var tot stats.Row
	for _, row := range rows {
		rate, brate := row.Rate, row.ByteRate
		if summary {
			rate, brate = row.AvgRate, row.AvgByteRate
		}
		tot.Events += row.Events
		tot.Rate += rate
		tot.ByteRate += brate
		line := fmt.Sprintf("%s\t%d\t%.0f\t%s\t-\t", row.Stream, row.Events, rate, human(uint64(brate)))
		if r.uniq != nil {
			line += fmt.Sprintf("%d\t", row.Unique)
		}
		if r.top != nil {
			var parts []string
			for _, c := range row.Top {
				parts = append(parts, fmt.Sprintf("%s=%d", c.Value, c.Count))
			}
			line += " " + r.o.top + ": " + strings.Join(parts, " ")
		}
		fmt.Fprintln(tw, line)
	}
	st := r.consumer.Stats()
	line := fmt.Sprintf("TOTAL\t%d\t%.0f\t%s\t%d\t", tot.Events, tot.Rate, human(uint64(tot.ByteRate)), st.Dropped)
	if r.uniq != nil {
		line += "\t"
	}
	fmt.Fprintln(tw, line)
	tw.Flush()
}
