package link

import (
	"errors"
	"strings"

	"github.com/go-zeromq/zmq4"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// isCurve reports whether sec is the CURVE mechanism, which encrypts and
// authenticates like TLS does.
func isCurve(sec zmq.Security) bool { return sec != nil && sec.Type() == zmq4.CurveSecurity }

// CurveReasonPrefix starts the refusal reasons of a CURVE handshake on
// both ends: "curve_" and internal/zmq's reason (zmq.CurveReasons), e.g.
// curve_unknown_key (the receiver does not list the sender's key),
// curve_bad_box (a HELLO sealed for another server key), curve_refused
// (the receiver refused our key), curve_no_welcome (the receiver closed
// the connection after our HELLO: check server_key).
const CurveReasonPrefix = "curve_"

// CurveReasons are the refusal reasons a CURVE handshake can count.
var CurveReasons = func() []string {
	var rs []string
	for _, r := range zmq.CurveReasons {
		rs = append(rs, CurveReasonPrefix+r)
	}
	return rs
}()

// curveRefusal names a failed CURVE handshake; "" if err is no CURVE
// failure.
func curveRefusal(err error) string {
	var ce *zmq.CurveError
	if errors.As(err, &ce) {
		return CurveReasonPrefix + ce.Reason
	}
	return ""
}

// ReasonMechanism counts, on the sender, receivers that greet with another
// ZMTP security mechanism: curve set on one end only.
const ReasonMechanism = "mechanism"

// mechanismMismatch reports whether the ZMTP greeting failed because the
// two ends use different mechanisms (zmq4 does not export that error).
func mechanismMismatch(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unsupported security mechanism")
}
