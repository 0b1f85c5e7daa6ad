package main

import "testing"

// The floor is only worth printing if it moves every message exactly once
// with the same batch boundaries as the real pipeline, partial last batch
// included.
func TestRunExactlyOnce(t *testing.T) {
	for _, batch := range []int{1, 7, 10, 1000, 1_000_000} {
		d, dup, missing, err := run(batch, 10_007, 4, 32)
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		if dup != 0 || missing != 0 || d <= 0 {
			t.Fatalf("batch %d: %d duplicates, %d missing, took %v", batch, dup, missing, d)
		}
	}
}
