package spool

import "sort"

// rangeSet is a set of sequence numbers kept as sorted, disjoint,
// non-adjacent ranges.
type rangeSet []Range

// add inserts r and returns how many of its numbers were not in the set.
func (s *rangeSet) add(r Range) uint64 {
	if r.Last < r.First {
		return 0
	}
	rs := *s
	// i: the first range that could touch r (its Last+1 >= r.First).
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Last+1 >= r.First || rs[i].Last == ^uint64(0) })
	j := i
	covered := uint64(0)
	merged := r
	for j < len(rs) && (r.Last == ^uint64(0) || rs[j].First <= r.Last+1) {
		// overlap of rs[j] with r
		lo, hi := max(rs[j].First, r.First), min(rs[j].Last, r.Last)
		if lo <= hi {
			covered += hi - lo + 1
		}
		merged.First = min(merged.First, rs[j].First)
		merged.Last = max(merged.Last, rs[j].Last)
		j++
	}
	if j == i+1 {
		rs[i] = merged
	} else if j == i {
		rs = append(rs, Range{})
		copy(rs[i+1:], rs[i:])
		rs[i] = merged
	} else {
		rs[i] = merged
		rs = append(rs[:i+1], rs[j:]...)
	}
	*s = rs
	return r.Last - r.First + 1 - covered
}

// remove takes r out of the set.
func (s *rangeSet) remove(r Range) {
	if r.Last < r.First {
		return
	}
	rs := *s
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Last >= r.First })
	if i == len(rs) || rs[i].First > r.Last {
		return
	}
	var out []Range
	out = append(out, rs[:i]...)
	for ; i < len(rs) && rs[i].First <= r.Last; i++ {
		if rs[i].First < r.First {
			out = append(out, Range{rs[i].First, r.First - 1})
		}
		if rs[i].Last > r.Last {
			out = append(out, Range{r.Last + 1, rs[i].Last})
		}
	}
	out = append(out, rs[i:]...)
	*s = out
}

// contains reports whether n is in the set, and the range holding it.
func (s rangeSet) contains(n uint64) (Range, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].Last >= n })
	if i < len(s) && s[i].First <= n {
		return s[i], true
	}
	return Range{}, false
}

// trimBelow removes every number <= w.
func (s *rangeSet) trimBelow(w uint64) {
	rs := *s
	i := 0
	for i < len(rs) && rs[i].Last <= w {
		i++
	}
	rs = rs[i:]
	if len(rs) > 0 && rs[0].First <= w {
		rs[0].First = w + 1
	}
	*s = rs
}

// count returns how many numbers of r are in the set.
func (s rangeSet) count(r Range) uint64 {
	var n uint64
	i := sort.Search(len(s), func(i int) bool { return s[i].Last >= r.First })
	for ; i < len(s) && s[i].First <= r.Last; i++ {
		lo, hi := max(s[i].First, r.First), min(s[i].Last, r.Last)
		n += hi - lo + 1
	}
	return n
}
