// Package authres is RFC 8601, the Authentication-Results header field:
// the one result type every check of sidecar returns (Result: method,
// result, reason, comment, properties), the one formatter (Format, folded
// for the milter and "sidecar check"; Line, on one line for an
// ARC-Authentication-Results payload and $dmarc_ar_header), one lenient
// parser (Parse, Split, AuthservID) for the fields other hosts wrote, and
// the authserv-id comparison (SameAuthservID) behind forged-header
// removal (RFC 8601 §5).
//
// It knows nothing of milters, ACLs or DNS.
package authres
