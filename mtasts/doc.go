// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (MTA-STS, RFC 8461): discovery of a recipient domain's policy
// through its _mta-sts TXT record (§3.1), the policy fetched over HTTPS
// with PKIX validation, no redirects, a short timeout and a size cap
// (§3.3), the policy's parser (§3.2) with the MX pattern rules of §4.1,
// and a cache keyed by policy id and bounded by max_age, kept in a file
// across restarts, refreshed in the background before it expires (§5.1).
//
// A cached policy is never given up because of a DNS or HTTPS failure: a
// failed refresh keeps it until it expires (§5.1), and a failure with no
// cached policy to fall back on is reported as temporary (ErrTemporary),
// never as "no policy".
//
// The package logs nothing: Lookup returns what it did (Result.Source,
// Result.Reason) and the errors, and the caller logs.
package mtasts
