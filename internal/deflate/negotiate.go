package deflate

import (
	"errors"
	"fmt"
	"strings"
)

// ExtensionName is the registered name of the extension (RFC 7692 §7).
const ExtensionName = "permessage-deflate"

// Parameter names, RFC 7692 §7.1.
const (
	paramServerNoContextTakeover = "server_no_context_takeover"
	paramClientNoContextTakeover = "client_no_context_takeover"
	paramServerMaxWindowBits     = "server_max_window_bits"
	paramClientMaxWindowBits     = "client_max_window_bits"
)

// maxWindowBits is the LZ77 window we compress with and assume when nothing is said (RFC 7692 §7.1.2).
const maxWindowBits = 15

var (
	// ErrNotNegotiated is returned by [Verify] when the response has no extension at all: the server
	// declined compression, which is not an error for the connection.
	ErrNotNegotiated = errors.New("deflate: permessage-deflate not negotiated")
	// ErrBadResponse reports a server response the client must fail the connection for (RFC 7692 §5).
	ErrBadResponse = errors.New("deflate: invalid permessage-deflate response")
)

// Params is what one side agreed to: the result of a negotiation.
type Params struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int // 8..15; 15 when not limited
	ClientMaxWindowBits     int // 8..15; 15 when not limited
}

// Config is what this endpoint is willing to do.
type Config struct {
	// ContextTakeover: this endpoint keeps compression context across messages in both directions when the
	// peer allows it. False: it asks for no context takeover in both directions (no per-connection state).
	ContextTakeover bool
}

// elementParams is the decoded parameter set of one permessage-deflate element. A window of 0 means the
// parameter was absent.
type elementParams struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int
	clientMaxWindowBits     int
	clientMaxWindowBitsSeen bool // present, with or without a value
}

// readParams checks one element's parameters: RFC 7692 §7 makes unknown names, duplicates and invalid
// values grounds to decline an offer (server) or fail the connection (client).
func readParams(ps []Param) (elementParams, error) {
	var e elementParams
	seen := map[string]bool{} // only the four known names ever enter it
	for _, p := range ps {
		name := strings.ToLower(p.Name)
		if seen[name] {
			return e, fmt.Errorf("duplicate parameter %q", p.Name)
		}
		switch name {
		case paramServerNoContextTakeover, paramClientNoContextTakeover:
			// RFC 7692 §7.1.1.1, §7.1.1.2: these have no value.
			if p.HasValue {
				return e, fmt.Errorf("parameter %q takes no value", p.Name)
			}
			if name == paramServerNoContextTakeover {
				e.serverNoContextTakeover = true
			} else {
				e.clientNoContextTakeover = true
			}
		case paramServerMaxWindowBits:
			// RFC 7692 §7.1.2.1: the value is required.
			if !p.HasValue {
				return e, fmt.Errorf("parameter %q needs a value", p.Name)
			}
			bits, ok := parseWindowBits(p.Value)
			if !ok {
				return e, fmt.Errorf("invalid %s=%q", p.Name, p.Value)
			}
			e.serverMaxWindowBits = bits
		case paramClientMaxWindowBits:
			// RFC 7692 §7.1.2.2: the value is optional in an offer.
			e.clientMaxWindowBitsSeen = true
			if p.HasValue {
				bits, ok := parseWindowBits(p.Value)
				if !ok {
					return e, fmt.Errorf("invalid %s=%q", p.Name, p.Value)
				}
				e.clientMaxWindowBits = bits
			}
		default:
			return e, fmt.Errorf("unknown parameter %q", p.Name)
		}
		seen[name] = true
	}
	return e, nil
}

// parseWindowBits accepts exactly the ABNF of RFC 7692 §7.1.2.1: 1*DIGIT in 8..15 with no leading zero.
func parseWindowBits(v string) (int, bool) {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return int(v[0] - '0'), true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0'), true
	}
	return 0, false
}

// Accept is the server side (RFC 7692 §5, §7.1): from the client's offers (in preference order) pick the first
// permessage-deflate offer this server can honour, and return the response header value and the params.
// ok=false: no acceptable offer (then no compression). Offers with unknown parameters, duplicate parameters or
// invalid values are declined (skipped), not fatal. server_max_window_bits < 15 in an offer is declined
// (our compressor always uses a 32 KiB window: never answer a window smaller than the one really used).
// client_max_window_bits (with or without a value) is answered by omitting it (we inflate any window).
// server_no_context_takeover in an offer is echoed; when cfg.ContextTakeover is false, the response has
// both server_no_context_takeover and client_no_context_takeover. client_no_context_takeover in an offer
// is echoed too, so that the returned Params say what the client will really do (RFC 7692 §7.1.1.2).
func Accept(offers []Extension, cfg Config) (response string, p Params, ok bool) {
	for _, off := range offers {
		if !strings.EqualFold(off.Name, ExtensionName) {
			continue
		}
		e, err := readParams(off.Params)
		if err != nil {
			continue
		}
		// RFC 7692 §7.1.2.1: accepting means answering a value no larger than offered; we only do 15.
		if e.serverMaxWindowBits != 0 && e.serverMaxWindowBits < maxWindowBits {
			continue
		}
		p = Params{ServerMaxWindowBits: maxWindowBits, ClientMaxWindowBits: maxWindowBits}
		var b strings.Builder
		b.WriteString(ExtensionName)
		// RFC 7692 §7.1.1.1: an offered server_no_context_takeover is accepted only by echoing it.
		if e.serverNoContextTakeover || !cfg.ContextTakeover {
			b.WriteString("; " + paramServerNoContextTakeover)
			p.ServerNoContextTakeover = true
		}
		if e.clientNoContextTakeover || !cfg.ContextTakeover {
			b.WriteString("; " + paramClientNoContextTakeover)
			p.ClientNoContextTakeover = true
		}
		// RFC 7692 §7.1.2.1: an offered server_max_window_bits (here 15) must appear in the response.
		if e.serverMaxWindowBits == maxWindowBits {
			b.WriteString("; " + paramServerMaxWindowBits + "=15")
		}
		return b.String(), p, true
	}
	return "", Params{}, false
}

// Offer is the client's Sec-WebSocket-Extensions value: "permessage-deflate" plus, when cfg.ContextTakeover
// is false, "; client_no_context_takeover; server_no_context_takeover". It never offers
// client_max_window_bits: we could not honour a smaller window if the server picked one.
func Offer(cfg Config) string {
	if cfg.ContextTakeover {
		return ExtensionName
	}
	return ExtensionName + "; " + paramClientNoContextTakeover + "; " + paramServerNoContextTakeover
}

// Verify is the client checking the server's response (RFC 7692 §5, §7.1.1.1, §7.1.2.2) to the offer made
// by [Offer] with the same cfg: exactly one permessage-deflate element, no unknown or duplicate params,
// valid values; client_max_window_bits in the response is an error because we did not offer it;
// server_max_window_bits=N is accepted (we inflate any window). It returns the params in force.
// A response with any other extension is an error. An empty response returns [ErrNotNegotiated]; every
// other error wraps [ErrBadResponse] and means the client must fail the connection (RFC 7692 §5).
func Verify(response []Extension, cfg Config) (Params, error) {
	if len(response) == 0 {
		return Params{}, ErrNotNegotiated
	}
	for _, ext := range response {
		if !strings.EqualFold(ext.Name, ExtensionName) {
			return Params{}, fmt.Errorf("%w: extension %q was not offered", ErrBadResponse, ext.Name)
		}
	}
	if len(response) > 1 {
		return Params{}, fmt.Errorf("%w: %d elements, want one", ErrBadResponse, len(response))
	}
	e, err := readParams(response[0].Params)
	if err != nil {
		return Params{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	// RFC 7692 §7.1.2.2: the server must not include client_max_window_bits unless the client offered it.
	if e.clientMaxWindowBitsSeen {
		return Params{}, fmt.Errorf("%w: %s was not offered", ErrBadResponse, paramClientMaxWindowBits)
	}
	// RFC 7692 §7.1.1.1: we offered server_no_context_takeover; a response without it accepts no offer of ours.
	if !cfg.ContextTakeover && !e.serverNoContextTakeover {
		return Params{}, fmt.Errorf("%w: %s missing", ErrBadResponse, paramServerNoContextTakeover)
	}
	p := Params{
		ServerNoContextTakeover: e.serverNoContextTakeover,
		// RFC 7692 §7.1.1.2: having offered client_no_context_takeover we keep no context either way.
		ClientNoContextTakeover: e.clientNoContextTakeover || !cfg.ContextTakeover,
		ServerMaxWindowBits:     maxWindowBits,
		ClientMaxWindowBits:     maxWindowBits,
	}
	if e.serverMaxWindowBits != 0 {
		p.ServerMaxWindowBits = e.serverMaxWindowBits
	}
	return p, nil
}
