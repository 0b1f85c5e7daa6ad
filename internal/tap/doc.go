// Package tap lets people look at the live event stream without slowing it
// down: the websocket hub the relay mounts at /v1/tap and its web page,
// the filters shared by the hub and the tap CLI, and a consumer library
// that reads a relay's PUB endpoint or its websocket.
//
// The websocket protocol: text messages, one event per message, encoded
// with event.AppendJSON (format=json, the default) or as the raw syslog
// line (format=raw). The hub also sends notices in-band, as JSON objects
// with a "notice" key:
//
//	{"notice":"dropped","dropped":N,"total":M}       // N events lost since the last notice, M in all
//	{"notice":"rates","interval_ms":1000,"streams":{"click":120,…}} // with rates=1: events per stream in the last interval, before filtering
//
// Query parameters: stream (glob, repeatable), match (field=value,
// repeatable, see event.ParseField), grep (RE2 regexp on the raw message),
// format (json|raw), sample (N or 1/N: one event in N), rates (1: send
// rates notices), token.
package tap
