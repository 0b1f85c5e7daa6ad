package tap

import (
	"errors"
	"net/url"
	"slices"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		glob, stream string
		want         bool
	}{
		{"click", "click", true},
		{"click", "clicks", false},
		{"web.*", "web.access", true},
		{"web.*", "web", false},
		{"*", "anything", true},
		{"*.err", "app.err", true},
		{"*.err", "app.errs", false},
		{"c?ick", "click", true},
		{"[bc]lick", "blick", true},
		{"[bc]lick", "slick", false},
	}
	for _, c := range cases {
		f, err := NewFilter([]string{c.glob}, nil, "", 0)
		if err != nil {
			t.Fatalf("%q: %v", c.glob, err)
		}
		if got := f.MatchStream(c.stream); got != c.want {
			t.Errorf("glob %q stream %q: got %v, want %v", c.glob, c.stream, got, c.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	bad := []func() error{
		func() error { _, err := NewFilter([]string{"[x"}, nil, "", 0); return err },
		func() error { _, err := NewFilter([]string{""}, nil, "", 0); return err },
		func() error { _, err := NewFilter(nil, []string{"novalue"}, "", 0); return err },
		func() error { _, err := NewFilter(nil, []string{"=x"}, "", 0); return err },
		func() error { _, err := NewFilter(nil, nil, "(", 0); return err },
		func() error { _, err := ParseSample("0"); return err },
		func() error { _, err := ParseSample("1/x"); return err },
	}
	for i, f := range bad {
		if err := f(); !errors.Is(err, ErrBadFilter) {
			t.Errorf("case %d: got %v, want ErrBadFilter", i, err)
		}
	}
}

func TestPrefixes(t *testing.T) {
	f, err := NewFilter([]string{"click", "web.*", "web.a*", "c[lk]ick"}, nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Prefixes(), []string{"click", "web.", "web.a", "c"}; !slices.Equal(got, want) {
		t.Errorf("Prefixes = %q, want %q", got, want)
	}
	f, _ = NewFilter([]string{"click", "*.err"}, nil, "", 0)
	if got := f.Prefixes(); got != nil {
		t.Errorf("a leading * must subscribe to all, got %q", got)
	}
}

func TestKeepAndSample(t *testing.T) {
	f, err := NewFilter([]string{"click"}, []string{"sd:u@32473.id=7"}, "message [0-9]+0$", 2)
	if err != nil {
		t.Fatal(err)
	}
	var kept []int
	for i := range 200 {
		user := "7"
		if i%3 == 0 {
			user = "8"
		}
		stream := "click"
		if i%7 == 0 {
			stream = "view"
		}
		if f.Keep(testEvent(stream, i, user)) {
			kept = append(kept, i)
		}
	}
	// Matches: i%10==0, i%3!=0, i%7!=0; then every other one of those.
	var want []int
	n := 0
	for i := range 200 {
		if i%10 == 0 && i%3 != 0 && i%7 != 0 {
			if n%2 == 0 {
				want = append(want, i)
			}
			n++
		}
	}
	if !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
}

func TestQueryRoundTrip(t *testing.T) {
	q := url.Values{"stream": {"a", "b.*"}, "match": {"app-name=x=y"}, "grep": {"^a"}, "sample": {"1/10"}}
	f, err := ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if f.Sample != 10 || f.Match[0].Value != "x=y" {
		t.Fatalf("parsed %+v", f)
	}
	g, err := ParseQuery(f.Query())
	if err != nil {
		t.Fatal(err)
	}
	if g.Query().Encode() != f.Query().Encode() {
		t.Errorf("round trip: %q != %q", g.Query().Encode(), f.Query().Encode())
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("stream=click&stream=web.*&grep=a%2Bb&sample=1/3&match=app-name%3Dx")
	f.Add("stream=[&match=&grep=(")
	f.Add("sample=0&stream=*")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := ParseQuery(q)
		if err != nil {
			if !errors.Is(err, ErrBadFilter) {
				t.Fatalf("error %v does not wrap ErrBadFilter", err)
			}
			return
		}
		// What is accepted is within the limits, so its cost per event is
		// bounded before the first event.
		if len(flt.Streams) > MaxStreams || len(flt.Match) > MaxMatches {
			t.Fatalf("accepted %d globs and %d matches", len(flt.Streams), len(flt.Match))
		}
		for _, g := range flt.Streams {
			if len(g) > MaxGlobLen {
				t.Fatalf("accepted a %d-byte glob", len(g))
			}
		}
		if flt.Grep != nil {
			if len(flt.Grep.String()) > MaxGrepLen || checkRegexCost(flt.Grep.String()) != nil {
				t.Fatalf("accepted grep %q over the limits", flt.Grep.String())
			}
		}
		again, err := ParseQuery(flt.Query())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", flt.Query().Encode(), err)
		}
		for _, s := range []string{"", "click", "web.access", "a/b"} {
			if flt.MatchStream(s) != again.MatchStream(s) {
				t.Fatalf("stream %q: filters disagree", s)
			}
		}
		for _, p := range flt.Prefixes() {
			if p == "" {
				t.Fatal("empty prefix")
			}
		}
	})
}
