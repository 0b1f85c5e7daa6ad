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

// pair is one batch size's numbers for both implementations.
type pair struct {
	batch          int
	py, gor, gop   float64 // python, go (goroutines), go-procs (worker processes)
	pyOK, gOK, gpO bool
}

func (p pair) ratio() float64 { return ratio(p.gor, p.py) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// pairs joins rows by batch size, in the order batch sizes first appear;
// a later run of the same implementation and batch replaces an earlier.
func pairs(rows []row) []pair {
	var out []pair
	idx := map[int]int{}
	for _, r := range rows {
		i, ok := idx[r.batch]
		if !ok {
			i = len(out)
			idx[r.batch] = i
			out = append(out, pair{batch: r.batch})
		}
		switch r.impl {
		case "python":
			out[i].py, out[i].pyOK = r.rate, r.ok
		case "go":
			out[i].gor, out[i].gOK = r.rate, r.ok
		case "go-procs":
			out[i].gop, out[i].gpO = r.rate, r.ok
		}
	}
	return out
}

func compareCmd(args []string, in io.Reader, w io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	svg := fs.String("svg", "", "also write the chart to this SVG file")
	goal := fs.Float64("goal", 10, "ratio go/python to reach at every batch size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, err := readRows(in)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	ps := pairs(rows)
	procs := slices.ContainsFunc(ps, func(p pair) bool { return p.gop > 0 })
	fmt.Fprintf(w, "%10s %14s %14s %10s", "batch", "python msg/s", "go msg/s", "go/python")
	if procs {
		fmt.Fprintf(w, " %16s %10s", "go-procs msg/s", "ratio")
	}
	fmt.Fprintf(w, "  %s\n", "exactly-once")
	met, metP := true, true
	for _, p := range ps {
		fmt.Fprintf(w, "%10d %14.0f %14.0f %9.1fx", p.batch, p.py, p.gor, p.ratio())
		ok := p.pyOK && p.gOK
		if procs {
			fmt.Fprintf(w, " %16.0f %9.1fx", p.gop, ratio(p.gop, p.py))
			ok = ok && p.gpO
		}
		fmt.Fprintf(w, "  %s\n", yes(ok))
		met = met && p.ratio() >= *goal && p.gOK
		metP = metP && ratio(p.gop, p.py) >= *goal && p.gpO
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "goal go >= %.0fx python at every batch size: %s", *goal, verdict(met))
	if procs {
		fmt.Fprintf(w, " (go-procs: %s)", verdict(metP))
	}
	fmt.Fprintln(w)
	if *svg != "" {
		if err := os.WriteFile(*svg, chartSVG(ps), 0o644); err != nil {
			return fmt.Errorf("compare: write chart: %w", err)
		}
	}
	return nil
}

// chartSVG draws msg/s (log scale) against batch size for both
// implementations, with the ratio over each batch size.
func chartSVG(ps []pair) []byte {
	const (
		W, H                   = 720, 420
		left, right, top, bott = 90, 30, 50, 60
	)
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b pair) int { return b.batch - a.batch })
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range ps {
		for _, v := range []float64{p.py, p.gor} {
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
		if len(ps) == 1 {
			return left + (W-left-right)/2
		}
		return left + float64(i)*float64(W-left-right)/float64(len(ps)-1)
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
	for i, p := range ps {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), H-bott+20, human(float64(p.batch)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">batch size (messages per acknowledgement)</text>`+"\n", (W-right+left)/2, H-15)
	series := []struct {
		name, color string
		v           func(pair) float64
	}{
		{"Go (internal/zmq + ackpipe), one process", "#1f77b4", func(p pair) float64 { return p.gor }},
		{"Go, workers as processes", "#2ca02c", func(p pair) float64 { return p.gop }},
		{"Python 3 + pyzmq (libzmq 4.3), 6 processes", "#d62728", func(p pair) float64 { return p.py }},
	}
	for si, s := range series {
		var pts []string
		for i, p := range ps {
			if v := s.v(p); v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(i), y(v), s.color)
			}
		}
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), s.color)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			W-right-300, top+8+si*18, s.color, W-right-280, top+13+si*18, s.name)
	}
	for i, p := range ps {
		if p.py > 0 && p.gor > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#1f77b4">%.1f×</text>`+"\n", x(i), y(p.gor)-10, p.ratio())
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
