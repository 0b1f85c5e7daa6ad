package event

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
)

// Interner turns byte slices into strings without allocating when the same
// value was seen recently. It is a fixed-size, 4-way set-associative cache:
// memory stays bounded however many distinct values arrive (a new value
// replaces a random one of its set), and a few hundred hot values almost
// never evict each other. It is safe for concurrent use.
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
// to a power of two, at least 4).
func NewInterner(slots int) *Interner {
	n := ways
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
	set := in.slots[maphash.Bytes(in.seed, b)&in.mask&^(ways-1):][:ways]
	free := -1
	for i := range set {
		p := set[i].Load()
		if p == nil {
			free = i
		} else if *p == string(b) {
			return *p
		}
	}
	if free < 0 {
		free = int(rand.Uint32() & (ways - 1))
	}
	s := string(b)
	set[free].Store(&s)
	return s
}

// ways is the associativity of an Interner.
const ways = 4

var defaultInterner = NewInterner(defaultInternSlots)

// Intern returns string(b) from the package's shared Interner: the router
// uses it to turn a header field into a stream name without allocating.
func Intern(b []byte) string { return defaultInterner.Intern(b) }
