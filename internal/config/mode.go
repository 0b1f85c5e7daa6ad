package config

import (
	"fmt"
	"strconv"
)

// FileMode is a file permission, written in the config as an octal
// number: 0660 or "0660".
type FileMode uint32

// String formats the mode as octal with a leading 0, as chmod takes it.
func (m FileMode) String() string { return fmt.Sprintf("0%03o", uint32(m)) }

// MarshalYAML writes the mode as a quoted octal string, which reads back
// the same whatever the YAML version's rules for leading zeros.
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }

// ParseFileMode reads an octal permission such as "0660" or "660".
func ParseFileMode(s string) (FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not a file mode; write octal permission bits, e.g. 0660", s)
	}
	return FileMode(n), nil
}
