package config

import (
	"os"
	"testing"
)

// BenchmarkParse measures a whole Parse (decode, defaults, validation,
// file checks): it runs on start and on every SIGHUP, so it only has to
// stay far below a human's patience.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"issue.good.yaml", "full.good.yaml"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("file="+name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(data, "testdata/"+name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
