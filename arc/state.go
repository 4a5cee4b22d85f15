package arc

import "github.com/mailsidecar/sidecar/internal/ascii"

// State is an ARC Chain Validation Status, named by its RFC 8617 token
// (§4.4, the "cv" values). Its string value is the token that the ARC-Seal
// cv= tag and the Authentication-Results "arc" method use.
type State string

// The three chain validation states.
const (
	// None: the message carries no ARC header fields (RFC 8617 §4.4).
	None State = "none"
	// Pass: every ARC Set is present and well formed, the newest
	// ARC-Message-Signature and every ARC-Seal verified (§5.2 step 7).
	Pass State = "pass"
	// Fail: anything else: a malformed or incomplete chain, a failed
	// signature, more than 50 instances, a seal already saying cv=fail.
	Fail State = "fail"
)

// String returns the RFC 8617 token.
func (s State) String() string { return string(s) }

// Valid reports whether s is one of the three states.
func (s State) Valid() bool { return s == None || s == Pass || s == Fail }

// ParseState parses a cv= token. RFC 8617 writes the values as ABNF
// quoted strings, which ignore ASCII case.
func ParseState(s string) (State, bool) {
	switch st := State(ascii.Lower(s)); st {
	case None, Pass, Fail:
		return st, true
	}
	return "", false
}
