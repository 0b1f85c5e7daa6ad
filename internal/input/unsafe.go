package input

import "unsafe"

// unsafePointer views the start of b as a pointer, for reading kernel
// control-message headers in place.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
