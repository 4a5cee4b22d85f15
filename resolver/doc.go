// Package resolver is sidecar's DNS stub resolver and the only package that
// imports github.com/miekg/dns.
//
// It sends queries with EDNS0 (RFC 6891, UDP payload 1232) and the DO bit
// (RFC 3225), retries over TCP when an answer is truncated (RFC 7766), caches
// answers by their TTL with negative caching (RFC 2308), and reports the AD
// bit (RFC 4035 §3.2.3, RFC 6840 §5.7) as Answer.Secure only when the answer
// came from a resolver that may be trusted for it: a loopback address or one
// listed in dns_trust_ad.
//
// NXDOMAIN and NODATA are answers, not errors. Timeouts, SERVFAIL, REFUSED
// and transport failures are temporary errors: errors.Is(err, ErrTemporary)
// is true for all of them, and ErrTimeout, ErrServFail, ErrRefused and
// ErrTransport tell them apart.
package resolver
