// Package frame splits a syslog byte stream (TCP, TLS, unix stream) into
// messages.
//
// Both transport framings of RFC 6587 are detected per frame, because
// rsyslog and other senders may mix them on one connection:
//
//   - octet counting, "LEN SP MSG", when a frame starts with a non-zero
//     digit followed by at most 9 more digits and a space. This is what
//     rsyslog's imtcp does too, so a non-transparent line that happens to
//     start with "digits SP" is read as octet-counted by both. More than 10
//     digits is ErrMalformed; digits followed by anything else (a
//     PRI-less "2026-11-22T…" timestamp) start an LF-delimited frame.
//   - non-transparent framing, MSG terminated by LF (a trailing CR is
//     stripped too), for everything else. Empty lines are skipped.
//
// rsyslog's compressed frames (omfwd ziplevel with compression.mode
// "single") are octet-counted frames whose payload is 'z' followed by a
// zlib stream; rsyslog octet-counts them even on a connection configured
// for traditional framing. They are inflated, bounded by the maximum
// length, so a zip bomb yields ErrOversize instead of memory. A frame
// starting with 'z' that has no valid zlib header is passed through as is.
// Stream compression (compression.mode "stream:always") is not supported.
//
// Frames are carved out of read slabs that are never overwritten, so a
// frame costs no allocation or copy of its own and the caller may keep it.
// A kept frame keeps its whole slab (up to 64 KiB, shared with the frames
// read around it) alive: fine for queues, which hold runs of consecutive
// frames, but a holder that keeps a sparse selection of frames for long
// (one stream out of many) should copy them. Slabs grow while reads fill
// them and shrink back for a trickle of small reads, so an idle connection
// holds a few KiB.
package frame
