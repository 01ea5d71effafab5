package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// jwksMinInterval is the least time between two fetches started by
	// Verify (a "kid" not in the set, or no set yet): a stream of tokens
	// with made-up kids must not become a stream of requests to the
	// key server.
	jwksMinInterval = 10 * time.Second
	jwksTimeout     = 10 * time.Second // one fetch, redirects included
	jwksMaxBody     = 1 << 20          // bytes; key sets are a few KiB
	jwksMaxRedirect = 3
)

// jwk is one usable verification key of the set.
type jwk struct {
	kid string
	alg string // "" when the JWK does not restrict it (RFC 7517 §4.4)
	key crypto.PublicKey
}

// jwksCache holds the keys fetched from a JWKS URL. A background goroutine
// refetches every refresh; Verify fetches on demand, rate-limited, when it
// finds no key for a token. Concurrent fetches are merged into one.
type jwksCache struct {
	url     string       // immutable
	client  *http.Client // immutable
	refresh time.Duration
	now     func() time.Time

	base   context.Context // cancelled by close: ends the loop and fetches
	cancel context.CancelFunc
	wg     sync.WaitGroup // the loop and every fetch goroutine
	once   sync.Once      // guards close

	mu         sync.Mutex
	keys       []jwk         // guarded by mu; replaced whole by each good fetch
	lastErr    error         // guarded by mu; the latest fetch's failure, nil after a success
	lastDemand time.Time     // guarded by mu; start of the latest fetch Verify started
	inflight   chan struct{} // guarded by mu; closed when the running fetch ends, nil when none
}

func checkJWKSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("auth: JWKSURL is not a URL")
	}
	switch {
	case u.Host == "":
		return nil, errors.New("auth: JWKSURL has no host")
	case u.Scheme == "https":
		return u, nil
	case u.Scheme == "http":
		// Keys over plain http are only as good as the network: allowed
		// to a loopback address only (a sidecar, a test server).
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return u, nil
		}
		return nil, errors.New("auth: JWKSURL must be https (http only to a loopback address)")
	}
	return nil, errors.New("auth: JWKSURL must be https (http only to a loopback address)")
}

func newJWKSCache(rawURL string, refresh time.Duration, now func() time.Time) (*jwksCache, error) {
	u, err := checkJWKSURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := &jwksCache{
		url:     u.String(),
		refresh: refresh,
		now:     now,
		client: &http.Client{
			Timeout: jwksTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) > jwksMaxRedirect {
					return errors.New("too many redirects")
				}
				_, err := checkJWKSURL(req.URL.String())
				return err
			},
		},
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

func (c *jwksCache) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.refresh)
	defer t.Stop()
	for {
		_ = c.fetch(c.base, false) // a failure keeps the old keys; Verify reports it
		select {
		case <-c.base.Done():
			return
		case <-t.C:
		}
	}
}

func (c *jwksCache) close() {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
}

var errRateLimited = errors.New("auth: JWKS fetched too recently")

// fetch starts a fetch, or joins the one running, and waits for its end or
// for ctx. A fetch runs on its own context (bounded by jwksTimeout and
// close), so one caller giving up does not fail the others.
func (c *jwksCache) fetch(ctx context.Context, onDemand bool) error {
	c.mu.Lock()
	ch := c.inflight
	if ch == nil {
		if c.base.Err() != nil {
			c.mu.Unlock()
			return errors.New("auth: verifier closed")
		}
		if onDemand {
			now := c.now()
			if !c.lastDemand.IsZero() && now.Sub(c.lastDemand) < jwksMinInterval {
				c.mu.Unlock()
				return errRateLimited
			}
			c.lastDemand = now
		}
		ch = make(chan struct{})
		c.inflight = ch
		c.wg.Add(1)
		go c.run(ch)
	}
	c.mu.Unlock()
	select {
	case <-ch:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lastErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *jwksCache) run(ch chan struct{}) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.base, jwksTimeout)
	keys, err := c.get(ctx)
	cancel()
	c.mu.Lock()
	if err == nil {
		c.keys = keys
	}
	c.lastErr = err
	c.inflight = nil
	c.mu.Unlock()
	close(ch)
}

// get fetches and decodes the set. Its errors never quote the URL (it may
// carry a credential in its query) nor the body.
func (c *jwksCache) get(ctx context.Context) ([]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, errors.New("auth: JWKS request could not be made")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("auth: JWKS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: JWKS fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS fetch: %w", err)
	}
	if len(body) > jwksMaxBody {
		return nil, fmt.Errorf("auth: JWKS larger than %d bytes", jwksMaxBody)
	}
	return parseJWKS(body)
}

// keysFor returns the set's keys that fit alg and kid, fetching the set
// again (rate-limited) when none does.
func (c *jwksCache) keysFor(ctx context.Context, alg, kid string) ([]crypto.PublicKey, error) {
	if ks := c.match(alg, kid, true); len(ks) > 0 {
		return ks, nil
	}
	err := c.fetch(ctx, true)
	if ks := c.match(alg, kid, true); len(ks) > 0 {
		return ks, nil
	}
	// A JWK without "kid" may still verify a token naming one: the kid is
	// only a hint (RFC 7515 §4.1.4).
	if ks := c.match(alg, kid, false); len(ks) > 0 {
		return ks, nil
	}
	c.mu.Lock()
	loaded, lastErr := c.keys != nil, c.lastErr
	c.mu.Unlock()
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, &keyError{reason: "JWKS unavailable", cause: err}
	case !loaded && lastErr != nil:
		return nil, &keyError{reason: "JWKS unavailable", cause: lastErr}
	case kid != "":
		return nil, &keyError{reason: "unknown key id"}
	}
	return nil, &keyError{reason: "no key for the token's algorithm"}
}

// match returns the keys fitting alg whose kid equals kid (any kid when
// kid is ""); with exact false, the keys without a kid instead.
func (c *jwksCache) match(alg, kid string, exact bool) []crypto.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []crypto.PublicKey
	for _, k := range c.keys {
		if !keyFits(alg, k.key) || k.alg != "" && k.alg != alg {
			continue
		}
		if exact && (kid == "" || k.kid == kid) || !exact && k.kid == "" {
			out = append(out, k.key)
		}
	}
	return out
}

// rawJWK holds the members of a JWK that Verify reads (RFC 7517 §4,
// RFC 7518 §6, RFC 8037 §2). Private members are ignored.
type rawJWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// parseJWKS decodes a JWK Set (RFC 7517 §5). Keys that are not for
// signatures, of a type or curve not understood, or malformed are skipped
// (§5: "SHOULD ignore"); a set with no usable key at all is an error, so
// that a broken response never empties the cache.
func parseJWKS(body []byte) ([]jwk, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || set.Keys == nil {
		return nil, errors.New("auth: JWKS is not a JSON object with a \"keys\" array")
	}
	var out []jwk
	for _, raw := range set.Keys {
		var r rawJWK
		if json.Unmarshal(raw, &r) != nil {
			continue
		}
		if k, ok := r.key(); ok {
			out = append(out, jwk{kid: r.Kid, alg: r.Alg, key: k})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("auth: JWKS has no usable signature key")
	}
	return out, nil
}

func (r *rawJWK) key() (crypto.PublicKey, bool) {
	if r.Use != "" && r.Use != "sig" { // RFC 7517 §4.2
		return nil, false
	}
	if r.KeyOps != nil && !slices.Contains(r.KeyOps, "verify") { // §4.3
		return nil, false
	}
	if r.Alg != "" && algFamily(r.Alg) == famNone { // §4.4; e.g. an encryption key
		return nil, false
	}
	var key crypto.PublicKey
	switch r.Kty {
	case "RSA": // RFC 7518 §6.3.1
		n, ok1 := b64uint(r.N)
		e, ok2 := b64uint(r.E)
		if !ok1 || !ok2 || !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, false
		}
		key = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC": // RFC 7518 §6.2.1
		var curve elliptic.Curve
		switch r.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, false
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64decode(r.X)
		y, err2 := b64decode(r.Y)
		// §6.2.1.2: coordinates are the full size, leading zeros kept.
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, false
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil { // not on the curve
			return nil, false
		}
		key = pk
	case "OKP": // RFC 8037 §2
		if r.Crv != "Ed25519" {
			return nil, false
		}
		x, err := b64decode(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, false
		}
		key = ed25519.PublicKey(x)
	default:
		// "oct" among them: a symmetric key never comes from a key set
		// fetched over the network.
		return nil, false
	}
	if r.Alg != "" && !keyFits(r.Alg, key) {
		return nil, false
	}
	k, err := checkPublicKey(key)
	return k, err == nil
}

// b64decode decodes base64url without padding (RFC 7515 §2), tolerating
// padding that some servers add.
func b64decode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// b64uint decodes a Base64urlUInt (RFC 7518 §2): big-endian, non-empty.
func b64uint(s string) (*big.Int, bool) {
	b, err := b64decode(s)
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return new(big.Int).SetBytes(b), true
}
