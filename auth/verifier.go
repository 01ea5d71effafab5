package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config says which tokens a [Verifier] accepts. At least one key source
// (HMACSecret, PublicKeys or JWKSURL) is required; several may be combined,
// and a token is then checked against the keys whose type fits its "alg".
type Config struct {
	// HMACSecret enables HS256, and HS384 and HS512 when it is long
	// enough for them: 32, 48 and 64 bytes (RFC 7518 §3.2). A secret
	// shorter than 32 bytes is an error.
	HMACSecret []byte

	// PublicKeys are the asymmetric keys tokens may be signed with:
	// *rsa.PublicKey (RS256/384/512, PS256/384/512; 2048 bits or more),
	// *ecdsa.PublicKey (ES256, ES384, ES512, each on its own curve) and
	// ed25519.PublicKey (EdDSA, RFC 8037). See [ParsePublicKeyPEM].
	PublicKeys []crypto.PublicKey

	// JWKSURL is a JSON Web Key Set (RFC 7517 §5) to take public keys
	// from: https, or http to a loopback address only. The set is fetched
	// when the Verifier is made and every JWKSRefresh, and again (at most
	// once every 10 seconds) when a token names a "kid" not in the set.
	// Symmetric ("oct") keys in the set are ignored.
	JWKSURL string

	// JWKSRefresh is how often the key set is fetched again; 0 means
	// 5 minutes. When a fetch fails the keys fetched before are kept.
	JWKSRefresh time.Duration

	// Issuer and Audience, when set, must equal the token's "iss" and be
	// one of its "aud" (RFC 7519 §4.1.1, §4.1.3); a token without the
	// claim is then rejected.
	Issuer, Audience string

	// Leeway is the clock skew allowed when checking "exp", "nbf" and
	// "iat"; 0 allows none. Negative is an error.
	Leeway time.Duration

	// MaxTokenSize is the longest token accepted, in bytes; 0 means 8192.
	// Longer ones fail with ErrTokenTooLarge before any decoding.
	MaxTokenSize int

	// Now is the clock for the time claims and the JWKS rate limit; nil
	// means time.Now.
	Now func() time.Time
}

const (
	defaultMaxTokenSize = 8192
	defaultJWKSRefresh  = 5 * time.Minute
)

// Verifier checks connection tokens. It is safe for concurrent use; its
// configuration is immutable once made, and the JWKS cache has its own
// lock.
type Verifier struct {
	secret  []byte             // immutable; nil when HMAC is off
	keys    []crypto.PublicKey // immutable, checked by checkPublicKey
	jwks    *jwksCache         // nil without Config.JWKSURL
	maxSize int
	parser  *jwt.Parser // immutable after NewVerifier: safe to share
}

// NewVerifier checks cfg and returns a Verifier for it. With a JWKSURL it
// starts fetching the key set in the background; call Close to stop.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeys) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: no key source: set HMACSecret, PublicKeys or JWKSURL")
	}
	if len(cfg.HMACSecret) > 0 && len(cfg.HMACSecret) < 32 {
		return nil, fmt.Errorf("auth: HMACSecret of %d bytes, at least 32 required", len(cfg.HMACSecret))
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: negative Leeway")
	}
	if cfg.MaxTokenSize < 0 {
		return nil, errors.New("auth: negative MaxTokenSize")
	}
	if cfg.JWKSRefresh < 0 {
		return nil, errors.New("auth: negative JWKSRefresh")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{maxSize: cfg.MaxTokenSize}
	if v.maxSize == 0 {
		v.maxSize = defaultMaxTokenSize
	}
	if len(cfg.HMACSecret) > 0 {
		v.secret = append([]byte(nil), cfg.HMACSecret...)
	}
	for i, k := range cfg.PublicKeys {
		k, err := checkPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("auth: PublicKeys[%d]: %w", i, err)
		}
		v.keys = append(v.keys, k)
	}
	if cfg.JWKSURL != "" {
		refresh := cfg.JWKSRefresh
		if refresh == 0 {
			refresh = defaultJWKSRefresh
		}
		c, err := newJWKSCache(cfg.JWKSURL, refresh, now)
		if err != nil {
			return nil, err
		}
		v.jwks = c
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods()),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(now),
		jwt.WithIssuedAt(),
		// Reject non-canonical base64url (set trailing bits): a token has
		// one encoding only.
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// methods lists the algorithms some configured key can verify. "none" is
// never among them (RFC 8725 §3.1).
func (v *Verifier) methods() []string {
	var algs []string
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		if v.secret != nil && len(v.secret) >= hmacMinLen(alg) {
			algs = append(algs, alg)
		}
	}
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		// A JWKS may bring keys of any type later.
		ok := v.jwks != nil
		for _, k := range v.keys {
			ok = ok || keyFits(alg, k)
		}
		if ok {
			algs = append(algs, alg)
		}
	}
	return algs
}

// Close stops the background JWKS refresh. Verify still works after Close,
// with the keys already fetched and on-demand fetches.
func (v *Verifier) Close() {
	if v.jwks != nil {
		v.jwks.close()
	}
}

// Verify checks token's signature, algorithm and claims and returns the
// identity it carries. ctx bounds a JWKS fetch the token may need; tokens
// checked against an HMAC secret or configured keys do not look at it.
//
// The error wraps ErrTokenExpired, ErrTokenNotYetValid or ErrInvalidToken
// (ErrTokenTooLarge wraps ErrInvalidToken); the time errors are returned only
// when everything else about the token is valid. Errors never contain the
// token.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if len(token) > v.maxSize {
		return Identity{}, ErrTokenTooLarge
	}
	if token == "" {
		return Identity{}, invalid("empty token")
	}
	var c claims
	keyfuncCalled := false
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		keyfuncCalled = true
		return v.keysFor(ctx, t)
	})
	if err != nil {
		return Identity{}, mapError(err, keyfuncCalled)
	}
	id := Identity{User: c.sub, Subscribe: c.subscribe, Publish: c.publish}
	if c.exp != nil {
		id.ExpiresAt = c.exp.Time
	}
	return id, nil
}

// keyError is a failure to find a key for a token; its reason is fixed
// text, its cause (a JWKS fetch or context error) never token text.
type keyError struct {
	reason string
	cause  error
}

func (e *keyError) Error() string { return e.reason }
func (e *keyError) Unwrap() error { return e.cause }

// keysFor returns the keys that may verify t: those whose type fits t's
// algorithm and, for JWKS keys, whose "kid" matches t's.
func (v *Verifier) keysFor(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: extensions listed in "crit" must be understood;
	// we understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, &keyError{reason: "crit header not supported"}
	}
	kid := ""
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, &keyError{reason: "kid header is not a string"}
		}
		kid = s
	}
	alg := t.Method.Alg()
	switch algFamily(alg) {
	case famNone:
		return nil, &keyError{reason: "algorithm not accepted"}
	case famHMAC:
		if v.secret == nil || len(v.secret) < hmacMinLen(alg) {
			return nil, &keyError{reason: "algorithm not accepted"}
		}
		return v.secret, nil
	}
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if keyFits(alg, k) {
			set.Keys = append(set.Keys, k)
		}
	}
	if v.jwks != nil {
		ks, err := v.jwks.keysFor(ctx, alg, kid)
		if err != nil && len(set.Keys) == 0 {
			return nil, err
		}
		for _, k := range ks {
			set.Keys = append(set.Keys, k)
		}
	}
	if len(set.Keys) == 0 {
		return nil, &keyError{reason: "no key for the token's algorithm"}
	}
	return set, nil
}

// mapError turns the jwt library's error into ours. Its text is not
// passed on: it can quote the token's header ("signing method X is
// invalid").
func mapError(err error, keyfuncCalled bool) error {
	var ce *claimError
	var ke *keyError
	switch {
	case errors.As(err, &ce):
		return invalid(ce.reason)
	case errors.As(err, &ke):
		return &reasonError{sentinel: ErrInvalidToken, reason: ke.reason, cause: ke.cause}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// "alg" missing or naming an algorithm the library lacks.
		return invalid("algorithm not accepted")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if !keyfuncCalled {
			// Refused by WithValidMethods before any key was looked up.
			return invalid("algorithm not accepted")
		}
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing iss or aud")
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	}
	return invalid("rejected")
}
