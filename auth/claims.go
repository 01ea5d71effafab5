package auth

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Limits on what a token may carry. They bound the work a connection's
// identity costs the server (every subscribe matches against the grants).
const (
	maxUserLen    = 128 // bytes of "sub"
	maxGrants     = 100 // patterns in each of "subscribe" and "publish"
	maxPatternLen = 128 // bytes of one pattern, the channel name limit

	// maxNumericDate is 9999-12-31T23:59:59Z: later dates are refused
	// rather than overflowing time.Time arithmetic.
	maxNumericDate = 253402300799
)

// claimError is a claim that is missing, of the wrong JSON type or out of
// bounds. Its reason names the claim, never its value.
type claimError struct{ reason string }

func (e *claimError) Error() string { return e.reason }

// claims is the claims set as Verify reads it. Decoding is strict about
// types, unlike jwt.RegisteredClaims: encoding/json would accept
// "exp":"1700000000" as a number (json.Number takes numeric strings), a
// null inside a string array as "", and "SUB" for "sub" (struct fields
// match case-insensitively). Claim names are case-sensitive (RFC 7519 §4),
// and members named more than once keep the last value (§4 allows that).
type claims struct {
	sub                string
	hasSub             bool
	iss                string
	aud                jwt.ClaimStrings
	exp, nbf, iat      *jwt.NumericDate
	subscribe, publish []string
}

var _ jwt.ClaimsValidator = (*claims)(nil)

func (c *claims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return &claimError{"claims set is not a JSON object"}
	}
	var err error
	if raw, ok := m["sub"]; ok {
		if c.sub, err = jsonString(raw, "sub"); err != nil {
			return err
		}
		c.hasSub = true
	}
	if raw, ok := m["iss"]; ok {
		if c.iss, err = jsonString(raw, "iss"); err != nil {
			return err
		}
	}
	if raw, ok := m["aud"]; ok {
		// RFC 7519 §4.1.3: a string or an array of strings.
		if bytes.HasPrefix(raw, []byte(`"`)) {
			s, err := jsonString(raw, "aud")
			if err != nil {
				return err
			}
			c.aud = jwt.ClaimStrings{s}
		} else if c.aud, err = jsonStrings(raw, "aud", false); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		dst  **jwt.NumericDate
	}{{"exp", &c.exp}, {"nbf", &c.nbf}, {"iat", &c.iat}} {
		if raw, ok := m[d.name]; ok {
			if *d.dst, err = numericDate(raw, d.name); err != nil {
				return err
			}
		}
	}
	// A null grant list is taken as absent: Go backends marshal a nil
	// slice as null.
	if raw, ok := m["subscribe"]; ok {
		if c.subscribe, err = jsonStrings(raw, "subscribe", true); err != nil {
			return err
		}
	}
	if raw, ok := m["publish"]; ok {
		if c.publish, err = jsonStrings(raw, "publish", true); err != nil {
			return err
		}
	}
	return nil
}

func jsonString(raw json.RawMessage, name string) (string, error) {
	var s string
	if !bytes.HasPrefix(raw, []byte(`"`)) || json.Unmarshal(raw, &s) != nil {
		return "", &claimError{"claim " + name + " is not a string"}
	}
	return s, nil
}

func jsonStrings(raw json.RawMessage, name string, nullOK bool) ([]string, error) {
	if nullOK && string(raw) == "null" {
		return nil, nil
	}
	var elems []json.RawMessage
	if !bytes.HasPrefix(raw, []byte(`[`)) || json.Unmarshal(raw, &elems) != nil {
		return nil, &claimError{"claim " + name + " is not an array of strings"}
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, err := jsonString(e, name)
		if err != nil {
			return nil, &claimError{"claim " + name + " is not an array of strings"}
		}
		out[i] = s
	}
	return out, nil
}

// numericDate decodes a NumericDate (RFC 7519 §2): a JSON number of
// seconds since the epoch, possibly fractional. Dates before 1970 or after
// year 9999 are refused.
func numericDate(raw json.RawMessage, name string) (*jwt.NumericDate, error) {
	bad := &claimError{"claim " + name + " is not a valid NumericDate"}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return nil, bad
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return nil, bad
	}
	sec, frac := math.Modf(f)
	return &jwt.NumericDate{Time: time.Unix(int64(sec), int64(frac*1e9))}, nil
}

// Validate is called by the jwt validator after the signature and the
// time claims were checked (jwt.ClaimsValidator).
func (c *claims) Validate() error {
	switch {
	case !c.hasSub:
		return &claimError{"claim sub is missing"}
	case c.sub == "":
		return &claimError{"claim sub is empty"}
	case len(c.sub) > maxUserLen:
		return &claimError{"claim sub is too long"}
	case hasControl(c.sub):
		return &claimError{"claim sub has control characters"}
	}
	if err := checkGrants(c.subscribe, "subscribe"); err != nil {
		return err
	}
	return checkGrants(c.publish, "publish")
}

func checkGrants(patterns []string, name string) error {
	if len(patterns) > maxGrants {
		return &claimError{"claim " + name + " has too many patterns"}
	}
	for _, p := range patterns {
		if len(p) > maxPatternLen {
			return &claimError{"claim " + name + " has a pattern too long"}
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// The jwt.Claims interface, for the library's time, issuer and audience
// checks.

func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c *claims) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.iat, nil }
func (c *claims) GetIssuer() (string, error)                   { return c.iss, nil }
func (c *claims) GetSubject() (string, error)                  { return c.sub, nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)       { return c.aud, nil }
