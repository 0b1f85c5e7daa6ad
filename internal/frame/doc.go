// Package frame splits a syslog byte stream (TCP, TLS, unix stream) into
// messages.
//
// Both transport framings of RFC 6587 are detected per frame, because
// rsyslog and other senders may mix them on one connection:
//
//   - octet counting, "LEN SP MSG", when a frame starts with a non-zero
//     digit followed by digits and a space (what rsyslog's imtcp does too);
//   - non-transparent framing, MSG terminated by LF (a trailing CR is
//     stripped too), for everything else. Empty lines are skipped.
//
// rsyslog's compressed frames (omfwd compression.mode="single" or ziplevel)
// are octet-counted frames whose payload is 'z' followed by a zlib stream;
// they are inflated, bounded by the maximum length, so a zip bomb yields
// ErrOversize instead of memory. A frame starting with 'z' that carries no
// valid zlib header is passed through as is.
//
// Frames are carved out of large read slabs that are never reused, so a
// frame costs no allocation of its own and the caller may keep it.
package frame
