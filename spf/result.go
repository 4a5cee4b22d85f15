package spf

import "github.com/mailsidecar/sidecar/internal/ascii"

// Result is the result of an SPF check, named by its RFC 7208 token
// (§2.6, §8). The string value is the token that Received-SPF and
// Authentication-Results use.
type Result string

// The seven results of check_host().
const (
	// None: no syntactically valid DNS domain name was extracted from the
	// SMTP session, or no SPF record was retrieved from the DNS (§2.6.1).
	None Result = "none"
	// Neutral: the domain owner has explicitly stated that it is not
	// asserting whether the IP address is authorized (§2.6.2).
	Neutral Result = "neutral"
	// Pass: the client is authorized to inject mail with the given
	// identity (§2.6.3).
	Pass Result = "pass"
	// Fail: the client is not authorized to use the domain in the given
	// identity (§2.6.4).
	Fail Result = "fail"
	// SoftFail: a weak statement that the host is probably not authorized
	// (§2.6.5).
	SoftFail Result = "softfail"
	// TempError: a transient, generally DNS, error while checking (§2.6.6).
	TempError Result = "temperror"
	// PermError: the domain's published records could not be correctly
	// interpreted (§2.6.7).
	PermError Result = "permerror"
)

// String returns the RFC 7208 token.
func (r Result) String() string { return string(r) }

// Valid reports whether r is one of the seven RFC 7208 results.
func (r Result) Valid() bool {
	switch r {
	case None, Neutral, Pass, Fail, SoftFail, TempError, PermError:
		return true
	}
	return false
}

// ParseResult parses a result token, ignoring ASCII case. Besides the RFC
// 7208 tokens it accepts the deprecated names Exim's $spf_result used
// before RFC 7208 ("err_perm" for permerror, "err_temp" for temperror) and
// the RFC 4408 names "unknown" (permerror) and "error" (temperror).
func ParseResult(s string) (Result, bool) {
	switch r := Result(ascii.Lower(s)); r {
	case None, Neutral, Pass, Fail, SoftFail, TempError, PermError:
		return r, true
	case "err_perm", "unknown":
		return PermError, true
	case "err_temp", "error":
		return TempError, true
	}
	return "", false
}

// qualifierResult maps a qualifier character to its result (§4.6.2).
func qualifierResult(q byte) (Result, bool) {
	switch q {
	case '+':
		return Pass, true
	case '-':
		return Fail, true
	case '~':
		return SoftFail, true
	case '?':
		return Neutral, true
	}
	return "", false
}
