// Package utf8stream validates UTF-8 incrementally, as text frames arrive in fragments.
//
// A [Validator] keeps only the state of a partial multi-byte sequence between calls, so a message split
// across any number of frames at any byte gives the same answer as the whole message. It fails fast: an
// invalid message is rejected at the first byte that no valid UTF-8 text could contain at that point
// (RFC 6455 §8.1; Autobahn cases 6.x), not only when the message ends.
package utf8stream
