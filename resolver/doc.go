// Package resolver is sidecar's DNS stub resolver and the only package that
// imports github.com/miekg/dns.
//
// A Resolver sends recursive queries to the servers of Options.Servers (or
// the nameserver lines of /etc/resolv.conf), in order, for Options.Attempts
// rounds, each attempt bounded by Options.Timeout and the caller's context.
// Queries carry EDNS0 (RFC 6891, UDP payload 1232) and the DO bit (RFC
// 3225), and are repeated over TCP when an answer is truncated (RFC 7766).
// A server that answers SERVFAIL or REFUSED is not asked again for that
// lookup. Replies to a UDP query with another message ID are ignored;
// replies that do not answer the question asked are transport errors.
//
// Query follows CNAME chains (at most 8 links): Answer.Records holds the
// records of the type asked for at the end of the chain and Answer.CNAME
// the chain's targets. When a reply stops at a CNAME target that has
// neither records nor a negative answer, Query chases the chain with
// further queries.
//
// The AD bit (RFC 4035 §3.2.3, RFC 6840 §5.7) is reported as Answer.Secure
// only when every reply of the chain had it and came from a server trusted
// for it: an address in Options.TrustAD (dns_trust_ad), by default the
// loopback addresses, where a validating resolver on the same host answers
// over a path nobody else can tamper with.
//
// Answers are cached in an LRU cache for the minimum TTL of the records
// and CNAMEs they use, capped by Options.MaxTTL. NXDOMAIN and NODATA are
// cached for min(SOA TTL, SOA MINIMUM) of the SOA in the authority section
// (RFC 2308 §5), and not at all without one. Errors and TTL 0 are not
// cached. Identical lookups running at the same time share one query.
//
// NXDOMAIN and NODATA are answers, not errors. Timeouts, SERVFAIL, REFUSED
// (and other error rcodes) and transport failures are temporary errors:
// errors.Is(err, ErrTemporary) is true for all of them, and ErrTimeout,
// ErrServFail, ErrRefused and ErrTransport tell them apart. A name that
// cannot be queried gives ErrBadName, which is not temporary.
//
// Names and TXT strings are octets on both sides of Query: a name may hold
// any octet but a dot in a label (RFC 2181 §11), a space or a NUL
// included, and is escaped only on its way to the wire; TXT strings are
// the record's octets, not miekg/dns's presentation form. ParseName and
// FormatName convert from and to presentation format.
//
// TXTLookup adapts any Querier to the LookupTXT hooks of go-msgauth.
package resolver
