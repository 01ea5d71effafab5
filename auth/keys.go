package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted, for configured keys and
// JWKS keys alike: RFC 7518 §3.3 requires 2048 bits or more for RS*, and
// §3.5 for PS*.
const minRSABits = 2048

// The key families. An algorithm names exactly one family, and a key
// belongs to exactly one: the token's "alg" decides which keys are even
// tried, so an RS256 token is never checked against the HMAC secret, nor an
// HS256 token against an RSA key's bytes (the algorithm-confusion attack).
type family int

const (
	famNone family = iota
	famHMAC
	famRSA
	famECDSA
	famEd25519
)

// algFamily maps a JWS "alg" (RFC 7518 §3.1, RFC 8037 §3.1) to its key
// family; "none" and anything unknown map to famNone and are never accepted.
func algFamily(alg string) family {
	switch alg {
	case "HS256", "HS384", "HS512":
		return famHMAC
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return famRSA
	case "ES256", "ES384", "ES512":
		return famECDSA
	case "EdDSA":
		return famEd25519
	}
	return famNone
}

// ecdsaAlgCurve is the one curve each ES algorithm is defined on
// (RFC 7518 §3.4): a P-256 key never verifies an ES512 token.
func ecdsaAlgCurve(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return nil
}

// hmacMinLen is the shortest secret usable with an HS algorithm: a key of
// the hash's output size or larger (RFC 7518 §3.2).
func hmacMinLen(alg string) int {
	switch alg {
	case "HS256":
		return 32
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 0
}

// keyFits reports whether key (already checked by checkPublicKey) may
// verify a token signed with alg.
func keyFits(alg string, key crypto.PublicKey) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return algFamily(alg) == famRSA
	case *ecdsa.PublicKey:
		return algFamily(alg) == famECDSA && k.Curve == ecdsaAlgCurve(alg)
	case ed25519.PublicKey:
		return algFamily(alg) == famEd25519
	}
	return false
}

// checkPublicKey returns key in the form Verify uses, or an error when it
// is of a type or size that no accepted algorithm may use.
func checkPublicKey(key crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, errors.New("auth: nil RSA public key")
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("auth: RSA key of %d bits, at least %d required", k.N.BitLen(), minRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return nil, errors.New("auth: RSA public exponent is invalid")
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, errors.New("auth: nil ECDSA public key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, fmt.Errorf("auth: ECDSA curve %s not supported (P-256, P-384, P-521 are)", k.Curve.Params().Name)
		}
		// Reject points off the curve: ECDH conversion validates the point.
		if _, err := k.ECDH(); err != nil {
			return nil, fmt.Errorf("auth: invalid ECDSA public key: %w", err)
		}
		return k, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: Ed25519 public key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return k, nil
	case *ed25519.PublicKey:
		if k == nil {
			return nil, errors.New("auth: nil Ed25519 public key")
		}
		return checkPublicKey(*k)
	case nil:
		return nil, errors.New("auth: nil public key")
	}
	return nil, fmt.Errorf("auth: unsupported public key type %T", key)
}

// ParsePublicKeyPEM parses the first public key in pemBytes: a PKIX
// "PUBLIC KEY" block (RSA, ECDSA or Ed25519), a PKCS #1 "RSA PUBLIC KEY"
// block, or a "CERTIFICATE", whose subject key is taken as it is (the
// certificate's chain and validity are not checked: the key is pinned by
// configuration, not trusted through a CA). Blocks of other types are
// skipped, except private keys, which are an error so that a private key
// is not deployed where a public one belongs by mistake.
//
// The key is checked as [NewVerifier] checks it (RSA of 2048 bits or more,
// the NIST curves P-256, P-384 and P-521, Ed25519).
func ParsePublicKeyPEM(pemBytes []byte) (crypto.PublicKey, error) {
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("auth: no public key PEM block found")
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("auth: PEM block %q is a private key; give the public key", block.Type)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: parse PEM block %q: %w", block.Type, err)
		}
		return checkPublicKey(key)
	}
}
