package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic; a failure is always an *Error
// with at least one problem, and a success round-trips through YAML().
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(DefaultYAML)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("Parse error %T %v is not an *Error with problems", err, err)
			}
			for _, p := range cerr.Problems {
				if p.Msg == "" || p.Err == nil {
					t.Fatalf("problem without message or sentinel: %+v", p)
				}
			}
			return
		}
		y1, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		c2, err := Parse(y1, "fuzz.yaml")
		if err != nil {
			t.Fatalf("effective YAML does not parse back: %v\n%s", err, y1)
		}
		y2, err := c2.YAML()
		if err != nil || !bytes.Equal(y1, y2) {
			t.Fatalf("round trip changed the config (%v):\n%s\n---\n%s", err, y1, y2)
		}
	})
}
