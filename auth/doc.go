// Package auth verifies the connection tokens of the latch pub/sub server:
// JSON Web Tokens (RFC 7519) signed with JWS (RFC 7515), which the
// application's backend issues and clients present when they connect.
//
// # Tokens
//
// A token is accepted when its signature verifies with one of the
// configured keys ([Config]): an HMAC secret (HS256, HS384, HS512), public
// keys (RS256/384/512 and PS256/384/512 with RSA, ES256/384/512 with ECDSA
// on P-256/P-384/P-521, EdDSA with Ed25519, RFC 8037), or keys fetched from
// a JWKS URL (RFC 7517). The token's "alg" header chooses the key family,
// and only keys of that family are tried: an HMAC secret is never used for
// an RS256 token, nor a public key's bytes as an HMAC secret for an HS256
// one (the algorithm-confusion attack). "alg":"none" is always refused
// (RFC 8725 §3.1), as is any "crit" header (RFC 7515 §4.1.11). Keys are
// never taken from the token itself: "jku", "x5u", "jwk" and "x5c" headers
// are ignored. With a JWKS, the token's "kid" header picks the key.
//
// Only the compact serialization is accepted, in canonical base64url
// without padding. Tokens longer than Config.MaxTokenSize (8 KiB by
// default) are rejected before they are decoded.
//
// # Claims
//
// The claims read are, with their JSON types (others are ignored):
//
//	sub        string, required: the user; 1–128 bytes, no control characters
//	exp        number (NumericDate): expiry; optional
//	nbf        number: not before; optional
//	iat        number: issued at; must not be in the future; optional
//	iss        string: checked against Config.Issuer when that is set
//	aud        string or array of strings: must contain Config.Audience when set
//	subscribe  array of strings: subscribe grants, at most 100 of 128 bytes
//	publish    array of strings: publish grants, likewise
//
// A claim of the wrong type makes the token invalid, even one the server
// would not need (a numeric string is not a number). Time claims are
// compared with Config.Now, allowing Config.Leeway of clock skew (none by
// default); an "exp" equal to now has expired (RFC 7519 §4.1.4). A null
// "subscribe" or "publish" counts as absent.
//
// # Grants
//
// A grant is a channel name pattern in which '*' matches any run of
// characters, ':' and '#' included ([Match]): "chat:*" grants every channel
// of the chat namespace, "*" every channel. The server decides what a grant
// allows in each namespace; this package only says whether one matches
// ([Identity.CanSubscribe], [Identity.CanPublish]).
//
// # Errors
//
// [Verifier.Verify] fails with an error that matches, with [errors.Is],
// exactly one of [ErrTokenExpired], [ErrTokenNotYetValid] and
// [ErrInvalidToken] ([ErrTokenTooLarge] wraps ErrInvalidToken). The two
// time errors are reported only for tokens that are otherwise valid, so
// that a forged expired token is not told apart from any other forgery.
// Error texts carry a fixed reason and never any part of the token.
//
// # Minting
//
// [SignHS256] makes HS256 tokens, for development, the demo page and tests;
// in production the application's backend signs tokens with any JWT
// library.
package auth
