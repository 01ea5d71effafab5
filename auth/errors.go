package auth

import "errors"

// Errors returned by [Verifier.Verify]. Test them with [errors.Is]: the
// error returned carries a short, fixed reason after the sentinel's text
// (for example "auth: invalid token: bad signature") and never any part of
// the token, so it is safe to log.
//
// The server maps ErrTokenExpired to "token_expired" and everything else to
// "unauthorized"; so ErrTokenExpired and ErrTokenNotYetValid are reported
// only for tokens whose signature and other claims are valid.
var (
	// ErrInvalidToken is wrapped by every rejection except the two time
	// errors below: malformed tokens, bad signatures, an algorithm that
	// does not fit any configured key (including "none"), unknown key ids,
	// missing or badly typed claims, the wrong issuer or audience, and a
	// token too large (ErrTokenTooLarge wraps it).
	ErrInvalidToken = errors.New("auth: invalid token")

	// ErrTokenExpired: "exp" is at or before now minus the leeway
	// (RFC 7519 §4.1.4).
	ErrTokenExpired = errors.New("auth: token expired")

	// ErrTokenNotYetValid: "nbf" (RFC 7519 §4.1.5) or "iat" (§4.1.6) is
	// after now plus the leeway.
	ErrTokenNotYetValid = errors.New("auth: token not yet valid")

	// ErrTokenTooLarge: the token is longer than Config.MaxTokenSize; it is
	// rejected before any decoding. It wraps ErrInvalidToken, so a caller
	// that only tests for ErrInvalidToken treats it as any other bad token.
	ErrTokenTooLarge error = &wrapError{msg: "auth: token too large", err: ErrInvalidToken}
)

// wrapError is an error with its own text that still matches err with
// errors.Is.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// reasonError is what Verify returns: a sentinel plus a fixed reason, and
// optionally a cause (a JWKS fetch failure or a context error) that is not
// derived from the token's text.
type reasonError struct {
	sentinel error
	reason   string
	cause    error
}

func (e *reasonError) Error() string {
	s := e.sentinel.Error()
	if e.reason != "" {
		s += ": " + e.reason
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *reasonError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

func invalid(reason string) error { return &reasonError{sentinel: ErrInvalidToken, reason: reason} }
