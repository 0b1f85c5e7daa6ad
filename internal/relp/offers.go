package relp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Offer is one feature of an "open" command's data: NAME[=VALUE[,VALUE…]].
type Offer struct {
	Name   string
	Values []string
}

// Limits of the offer grammar (librelp src/offers.h); the frame size
// bounds the rest.
const (
	maxOfferName   = 32
	maxOfferValue  = 255
	maxOfferValues = 64
	maxOffers      = 64
)

// ErrOffers means an "open" command's data is not a list of offers.
var ErrOffers = errors.New("relp: bad offers")

// ParseOffers parses the data of an "open" command (or of its answer
// after the status line): offers separated by LF.
func ParseOffers(data []byte) ([]Offer, error) {
	var offers []Offer
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue // librelp's client ends nothing with LF, but tolerate it
		}
		if len(offers) == maxOffers {
			return nil, fmt.Errorf("%w: more than %d offers", ErrOffers, maxOffers)
		}
		name, vals, hasVals := bytes.Cut(line, []byte{'='})
		if len(name) == 0 || len(name) > maxOfferName {
			return nil, fmt.Errorf("%w: offer name %q must be 1 to %d bytes", ErrOffers, name, maxOfferName)
		}
		o := Offer{Name: string(name)}
		if hasVals {
			for _, v := range bytes.Split(vals, []byte{','}) {
				if len(v) == 0 {
					continue // librelp skips empty values too
				}
				if len(v) > maxOfferValue {
					return nil, fmt.Errorf("%w: a value of offer %q is longer than %d bytes", ErrOffers, o.Name, maxOfferValue)
				}
				if len(o.Values) == maxOfferValues {
					return nil, fmt.Errorf("%w: offer %q has more than %d values", ErrOffers, o.Name, maxOfferValues)
				}
				o.Values = append(o.Values, string(v))
			}
		}
		offers = append(offers, o)
	}
	return offers, nil
}

// AppendOffers appends offers in the wire form ParseOffers reads.
func AppendOffers(dst []byte, offers []Offer) []byte {
	for i, o := range offers {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, o.Name...)
		dst = append(dst, '=')
		dst = append(dst, strings.Join(o.Values, ",")...)
	}
	return dst
}

// ProtocolVersion is the RELP version the relay speaks: librelp's current
// one (RELP_CURR_PROTOCOL_VERSION in src/relp.h), 0.
const ProtocolVersion = 0

// negotiate checks a client's offers and returns the data of the answer:
// "200 OK", then relp_version (the lower of the client's and ours),
// relp_software and commands=syslog. librelp's client breaks the session
// when the answer's commands lack syslog.
func negotiate(offers []Offer, software []string) ([]byte, error) {
	version, syslog := -1, false
	for _, o := range offers {
		switch o.Name {
		case "relp_version":
			if len(o.Values) == 0 {
				return nil, fmt.Errorf("%w: relp_version has no value", ErrOffers)
			}
			v, err := strconv.Atoi(o.Values[0])
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: relp_version %q is not a version number", ErrOffers, o.Values[0])
			}
			version = min(v, ProtocolVersion)
		case "commands":
			for _, c := range o.Values {
				if c == CmdSyslog {
					syslog = true
				}
			}
		}
	}
	if version < 0 {
		return nil, fmt.Errorf("%w: no relp_version offer", ErrOffers)
	}
	if !syslog {
		return nil, fmt.Errorf("%w: the client does not offer commands=syslog", ErrOffers)
	}
	out := append([]byte(nil), "200 OK\n"...)
	return AppendOffers(out, []Offer{
		{Name: "relp_version", Values: []string{strconv.Itoa(version)}},
		{Name: "relp_software", Values: software},
		{Name: "commands", Values: []string{CmdSyslog}},
	}), nil
}
