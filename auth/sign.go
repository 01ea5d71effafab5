package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mintClaims is the claims set SignHS256 writes.
type mintClaims struct {
	Sub       string           `json:"sub"`
	Exp       *jwt.NumericDate `json:"exp,omitempty"`
	Iat       *jwt.NumericDate `json:"iat,omitempty"`
	Subscribe []string         `json:"subscribe,omitempty"`
	Publish   []string         `json:"publish,omitempty"`
}

// The jwt.Claims interface; SignHS256 does not use the getters.
func (c mintClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c mintClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c mintClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat, nil }
func (c mintClaims) GetIssuer() (string, error)                   { return "", nil }
func (c mintClaims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c mintClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// SignHS256 mints an HS256 token for id: "sub" (id.User), "exp" when
// id.ExpiresAt is set, "iat" (issuedAt; left out when zero), and
// "subscribe" and "publish" when not empty. Times are written in whole
// seconds, truncated. It is meant for the demo endpoint, the CLI and
// tests; production tokens come from the application's backend.
//
// It refuses what Verify would refuse: a secret shorter than 32 bytes, an
// empty or over-long user, too many or too long grant patterns.
func SignHS256(secret []byte, id Identity, issuedAt time.Time) (string, error) {
	if len(secret) < 32 {
		return "", fmt.Errorf("auth: HMAC secret of %d bytes, at least 32 required", len(secret))
	}
	c := claims{sub: id.User, hasSub: true, subscribe: id.Subscribe, publish: id.Publish}
	if err := c.Validate(); err != nil {
		return "", errors.New("auth: cannot sign: " + err.Error())
	}
	m := mintClaims{Sub: id.User, Subscribe: id.Subscribe, Publish: id.Publish}
	if !id.ExpiresAt.IsZero() {
		m.Exp = jwt.NewNumericDate(id.ExpiresAt)
	}
	if !issuedAt.IsZero() {
		m.Iat = jwt.NewNumericDate(issuedAt)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}
