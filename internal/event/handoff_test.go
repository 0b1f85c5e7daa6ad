package event

import (
	"errors"
	"testing"
)

func TestHandoffFiresOnceAfterLastRelease(t *testing.T) {
	var calls int
	var got error
	h := NewHandoff(func(err error) { calls++; got = err })
	a, b := &Event{}, &Event{}
	a.SetHandoff(h)
	b.SetHandoff(h)
	a.Hold()
	b.Hold()
	b.Hold()
	h.Release(nil) // the creator's own hold
	a.Release(nil)
	b.Release(nil)
	if calls != 0 {
		t.Fatalf("fired with a hold outstanding")
	}
	b.Release(nil)
	if calls != 1 || got != nil {
		t.Fatalf("calls=%d err=%v, want 1 call with nil", calls, got)
	}
}

func TestHandoffReportsFirstError(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	var got error
	h := NewHandoff(func(err error) { got = err })
	e := &Event{}
	e.SetHandoff(h)
	e.Hold()
	e.Hold()
	e.Release(first)
	e.Release(second)
	h.Release(nil)
	if got != first {
		t.Fatalf("got %v, want %v", got, first)
	}
}

func TestNoHandoffIsFree(t *testing.T) {
	e := &Event{}
	e.Hold()
	e.Release(errors.New("ignored"))
	if n := testing.AllocsPerRun(100, func() { e.Hold(); e.Release(nil) }); n != 0 {
		t.Fatalf("%v allocs per hold/release without a Handoff", n)
	}
}
