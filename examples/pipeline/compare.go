package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// row is one -tsv line: impl batch count seconds msgs_per_sec exactly_once.
type row struct {
	impl  string
	batch int
	rate  float64
	ok    bool
}

func readRows(r io.Reader) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if len(f) == 1 && f[0] == "" {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("line %d: %d fields, want 6 (impl batch count seconds msg/s exactly-once)", line, len(f))
		}
		b, err1 := strconv.Atoi(f[1])
		rate, err2 := strconv.ParseFloat(f[4], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: bad batch %q or rate %q", line, f[1], f[4])
		}
		rows = append(rows, row{impl: f[0], batch: b, rate: rate, ok: f[5] == "yes"})
	}
	return rows, sc.Err()
}

// table holds every implementation's rate per batch size. The reference
// ("python") is the baseline; the others are ratioed against it.
type table struct {
	batches []int    // in the order they first appear
	impls   []string // non-reference implementations, in order of appearance
	rate    map[string]map[int]float64
	ok      map[string]map[int]bool
}

const reference = "python"

// newTable joins rows by implementation and batch size; a later run of
// the same pair replaces an earlier one.
func newTable(rows []row) *table {
	t := &table{rate: map[string]map[int]float64{}, ok: map[string]map[int]bool{}}
	for _, r := range rows {
		if !slices.Contains(t.batches, r.batch) {
			t.batches = append(t.batches, r.batch)
		}
		if r.impl != reference && !slices.Contains(t.impls, r.impl) {
			t.impls = append(t.impls, r.impl)
		}
		if t.rate[r.impl] == nil {
			t.rate[r.impl], t.ok[r.impl] = map[int]float64{}, map[int]bool{}
		}
		t.rate[r.impl][r.batch], t.ok[r.impl][r.batch] = r.rate, r.ok
	}
	return t
}

// ratio is impl's rate over the reference's at batch b (0 if unknown).
func (t *table) ratio(impl string, b int) float64 {
	ref := t.rate[reference][b]
	if ref == 0 {
		return 0
	}
	return t.rate[impl][b] / ref
}

func compareCmd(args []string, in io.Reader, w io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	svg := fs.String("svg", "", "also write the chart to this SVG file")
	goal := fs.Float64("goal", 10, "ratio over python to reach at every batch size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, err := readRows(in)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	t := newTable(rows)
	fmt.Fprintf(w, "%10s %14s", "batch", reference+" msg/s")
	for _, impl := range t.impls {
		fmt.Fprintf(w, " %14s %7s", impl+" msg/s", "ratio")
	}
	fmt.Fprintf(w, "  %s\n", "exactly-once")
	met := map[string]bool{}
	for _, impl := range t.impls {
		met[impl] = true
	}
	for _, b := range t.batches {
		fmt.Fprintf(w, "%10d %14.0f", b, t.rate[reference][b])
		ok := t.ok[reference][b]
		for _, impl := range t.impls {
			r := t.ratio(impl, b)
			fmt.Fprintf(w, " %14.0f %6.1fx", t.rate[impl][b], r)
			ok = ok && t.ok[impl][b]
			met[impl] = met[impl] && r >= *goal && t.ok[impl][b]
		}
		fmt.Fprintf(w, "  %s\n", yes(ok))
	}
	for _, impl := range t.impls {
		verdict := "met"
		if !met[impl] {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "goal %s >= %.0fx %s at every batch size: %s\n", impl, *goal, reference, verdict)
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, t.chartSVG(), 0o644); err != nil {
			return fmt.Errorf("compare: write chart: %w", err)
		}
	}
	return nil
}

// names gives the chart legend for the implementations bench/pipeline.sh runs.
var names = map[string]string{
	reference:  "Python 3 + pyzmq (libzmq 4.3), 6 processes",
	"go":       "Go (internal/zmq + ackpipe), one process",
	"go-p1":    "Go, one process, GOMAXPROCS=1",
	"go-procs": "Go, workers as child processes",
}

var palette = []string{"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// chartSVG draws msg/s (log scale) against batch size, one line per
// implementation, with the first one's ratio over the reference.
func (t *table) chartSVG() []byte {
	const (
		W, H                   = 760, 440
		left, right, top, bott = 90, 30, 50, 60
	)
	batches := slices.Clone(t.batches)
	slices.SortFunc(batches, func(a, b int) int { return b - a })
	impls := append(slices.Clone(t.impls), reference)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, impl := range impls {
		for _, v := range t.rate[impl] {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	x := func(i int) float64 {
		if len(batches) == 1 {
			return left + (W-left-right)/2
		}
		return left + float64(i)*float64(W-left-right)/float64(len(batches)-1)
	}
	y := func(v float64) float64 {
		return top + (dhi-math.Log10(v))/(dhi-dlo)*float64(H-top-bott)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Batch-acknowledged pipeline: throughput against batch size (one batch in flight)</text>`+"\n", left-60)
	for d := dlo; d <= dhi; d++ {
		yy := y(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, yy, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, yy+4, human(math.Pow(10, d)))
	}
	fmt.Fprintf(&b, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">messages per second (log scale)</text>`+"\n", (H-bott+top)/2)
	for i, bs := range batches {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), H-bott+20, human(float64(bs)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">batch size (messages per acknowledgement)</text>`+"\n", (W-right+left)/2, H-15)
	for si, impl := range impls {
		color := "#d62728" // the reference is red
		if impl != reference {
			color = palette[si%len(palette)]
		}
		name := names[impl]
		if name == "" {
			name = impl
		}
		var pts []string
		for i, bs := range batches {
			if v := t.rate[impl][bs]; v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(i), y(v), color)
			}
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			W-right-300, top+8+si*18, color, W-right-280, top+13+si*18, name)
	}
	if len(t.impls) > 0 {
		first := t.impls[0]
		for i, bs := range batches {
			if r := t.ratio(first, bs); r > 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%.1f×</text>`+"\n", x(i), y(t.rate[first][bs])-10, palette[0], r)
			}
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// human prints 1000 as 1k and 1000000 as 1M.
func human(v float64) string {
	switch {
	case v >= 1e6 && math.Mod(v, 1e6) == 0:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e3 && math.Mod(v, 1e3) == 0:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
