package server

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/server/web"
)

// verifyTimeout bounds one token verification (a JWKS fetch included).
const verifyTimeout = 5 * time.Second

// newVerifier builds the token verifier of cfg, nil when no key is
// configured. In demo mode without a secret, a random secret is made: the
// demo endpoint mints its tokens with it.
func newVerifier(cfg *AuthConfig, demo bool) (*auth.Verifier, []byte, error) {
	secret := []byte(cfg.HMACSecret)
	if demo && len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // never fails (crypto/rand)
	}
	if len(secret) == 0 && len(cfg.PublicKeyFiles) == 0 && cfg.JWKSURL == "" {
		return nil, nil, nil
	}
	var keys []crypto.PublicKey
	for _, f := range cfg.PublicKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("auth public key: %w", err)
		}
		k, err := auth.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, nil, fmt.Errorf("auth public key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	v, err := auth.NewVerifier(auth.Config{
		HMACSecret:  secret,
		PublicKeys:  keys,
		JWKSURL:     cfg.JWKSURL,
		JWKSRefresh: cfg.JWKSRefresh,
		Issuer:      cfg.Issuer,
		Audience:    cfg.Audience,
		Leeway:      cfg.Leeway,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	return v, secret, nil
}

type identityKey struct{}

// upgradeToken returns the token a handshake carries: the "token" query
// parameter (browsers cannot set headers on a WebSocket) or an
// "Authorization: Bearer" header.
func upgradeToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		// The scheme is case-insensitive (RFC 9110 §11.1).
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), true
		}
	}
	if !strings.Contains(r.URL.RawQuery, "token=") {
		return "", false
	}
	q := r.URL.Query()
	if _, ok := q["token"]; !ok {
		return "", false
	}
	return q.Get("token"), true
}

// withoutToken returns r with its token query parameter removed from the
// URL and RequestURI: what the hub keeps of the request, the logs and the
// metrics never see it.
func withoutToken(r *http.Request) *http.Request {
	q := r.URL.Query()
	q.Del("token")
	u := *r.URL
	u.RawQuery = q.Encode()
	r2 := *r
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	return &r2
}

// authenticate wraps the /ws hub: a handshake with a token is verified
// before the upgrade (HTTP 401 if it is bad), and its identity travels to
// OnConnect in the request's context.
func (p *pubsub) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := upgradeToken(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if p.verifier == nil {
			p.metrics.authFailure("no_keys")
			p.metrics.badTokens.Add(1)
			unauthorized(w, "this server does not take tokens")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
		id, err := p.verifier.Verify(ctx, tok)
		cancel()
		if err != nil {
			p.metrics.authFailure(authReason(err))
			p.metrics.badTokens.Add(1)
			p.logger.Debug("upgrade token refused", "remote", r.RemoteAddr, "err", err)
			unauthorized(w, tokenProblem(err))
			return
		}
		r = withoutToken(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, &id)))
	})
}

// unauthorized answers 401 with a Bearer challenge (RFC 6750 §3).
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	http.Error(w, msg, http.StatusUnauthorized)
}

// tokenProblem says what is wrong with a token, without its text.
func tokenProblem(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, auth.ErrTokenNotYetValid):
		return "token not yet valid"
	case errors.Is(err, auth.ErrTokenTooLarge):
		return "token too large"
	}
	return "invalid token"
}

// authReason is the metric label of a verification failure.
func authReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return "expired"
	case errors.Is(err, auth.ErrTokenNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, auth.ErrTokenTooLarge):
		return "too_large"
	}
	return "invalid"
}

// authReasons lists the labels, so metrics can report zero counts.
var authReasons = []string{"expired", "not_yet_valid", "too_large", "invalid", "no_keys", "timeout"}

// demoToken serves GET /demo/token?user=NAME in demo mode: a token for that
// user, valid for an hour, minted with the server's secret.
func demoToken(secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if !validDemoUser(user) {
			http.Error(w, "user must be 1-32 bytes of A-Z a-z 0-9 _ -", http.StatusBadRequest)
			return
		}
		now := time.Now()
		tok, err := auth.SignHS256(secret, auth.Identity{User: user, ExpiresAt: now.Add(time.Hour)}, now)
		if err != nil {
			http.Error(w, "cannot mint a token", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		b := []byte(`{"token":`)
		b = appendString(b, tok)
		b = append(b, `,"user":`...)
		b = appendString(b, user)
		b = append(b, "}\n"...)
		_, _ = w.Write(b)
	})
}

func validDemoUser(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// jsClient serves the JavaScript client, latch.js (docs/auth.md).
func jsClient() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, web.FS, "latch.js")
	})
}
