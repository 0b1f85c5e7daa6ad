// Package event holds the relay's events: the raw syslog message as
// received, a light header scan for routing, a full go-syslog parse on
// demand, JSON encoding, field extraction and the hand-off hook.
//
// The routing path (Header, Field.Get for header fields, Intern) does not
// allocate: header fields are views into Raw and stream names are interned.
//
// # JSON
//
// AppendJSON writes one object per event, members in this order:
//
//	{
//	  "stream": "sshd",                       // always; "" before routing
//	  "format": "rfc5424",                    // rfc5424 | rfc3164 | forward | unknown
//	  "facility": 4,                          // PRI / 8; only with a PRI
//	  "severity": 6,                          // PRI % 8; only with a PRI
//	  "timestamp": "2026-11-22T05:06:07.123456+00:00", // as sent: RFC 3339, or "Nov 22 05:06:07" for rfc3164
//	  "hostname": "web1",
//	  "app_name": "sshd",                     // APP-NAME, or rsyslog's programname
//	  "proc_id": "4242",
//	  "msg_id": "ID47",                       // rfc5424 only
//	  "structured_data": {"origin@32473": {"ip": "192.0.2.1"}}, // rfc5424 only; values are strings
//	  "message": "Accepted publickey for alice", // always; may be ""
//	  "input": "tcp514",                      // the relay input's name
//	  "peer": "192.0.2.7:51234",              // the sender's address
//	  "received": "2026-11-22T05:06:07.123456789Z" // RFC 3339 with nanoseconds
//	}
//
// Absent members are omitted, except stream and message. RFC 5424 NILVALUE
// ("-") fields are absent. Strings are valid UTF-8: invalid bytes become
// U+FFFD. Structured data keeps the order and any duplicates of the
// message; malformed structured data is left in message instead.
//
// # Header layouts
//
// Scan recognises RFC 5424 (rsyslog's RSYSLOG_SyslogProtocol23Format), RFC
// 3164 (RSYSLOG_TraditionalForwardFormat), rsyslog's RSYSLOG_ForwardFormat
// (RFC 3164 with an RFC 3339 timestamp) and messages without PRI or
// timestamp. For the RFC 3164 layouts it follows rsyslog's parser: a
// hostname is any first word that looks like one (timestamp or not), the
// tag ends at ':' or a space, and app_name is rsyslog's programname (the
// tag up to '[', ':' or '/'). So app_name is always what rsyslog's
// %app-name% property holds, and routing by it agrees with rsyslog.
package event
