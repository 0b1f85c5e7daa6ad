package event

import (
	"hash/maphash"
	"sync/atomic"
)

// Interner turns byte slices into strings without allocating when the same
// value was seen recently. It is a fixed-size, direct-mapped cache: memory
// stays bounded however many distinct values arrive (a colliding value
// simply replaces the older one). It is safe for concurrent use.
type Interner struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[string]
}

const (
	// defaultInternSlots suits a few thousand distinct stream names.
	defaultInternSlots = 4096
	// maxInternLen keeps long values (regex or JSON captures) out of the
	// table; they are allocated each time instead.
	maxInternLen = 128
)

// NewInterner returns an Interner with at least slots entries (rounded up
// to a power of two).
func NewInterner(slots int) *Interner {
	n := 1
	for n < slots {
		n <<= 1
	}
	return &Interner{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]atomic.Pointer[string], n)}
}

// Intern returns string(b), reusing a previous string of the same value.
func (in *Interner) Intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInternLen {
		return string(b)
	}
	slot := &in.slots[maphash.Bytes(in.seed, b)&in.mask]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

var defaultInterner = NewInterner(defaultInternSlots)

// Intern returns string(b) from the package's shared Interner: the router
// uses it to turn a header field into a stream name without allocating.
func Intern(b []byte) string { return defaultInterner.Intern(b) }
