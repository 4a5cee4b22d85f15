package resolver

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"time"
)

// Type is a DNS RR type (RFC 1035 §3.2.2 and later registrations).
type Type uint16

// The RR types sidecar asks for.
const (
	TypeA     Type = 1
	TypeNS    Type = 2
	TypeCNAME Type = 5
	TypeSOA   Type = 6
	TypePTR   Type = 12
	TypeMX    Type = 15
	TypeTXT   Type = 16
	TypeAAAA  Type = 28
	TypeTLSA  Type = 52
)

var typeNames = map[Type]string{
	TypeA: "A", TypeNS: "NS", TypeCNAME: "CNAME", TypeSOA: "SOA", TypePTR: "PTR",
	TypeMX: "MX", TypeTXT: "TXT", TypeAAAA: "AAAA", TypeTLSA: "TLSA",
}

// String returns the mnemonic of the type ("TXT"), or "TYPEnnn" (RFC 3597).
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// ParseType returns the Type named by a mnemonic such as "MX" or "TYPE52".
func ParseType(s string) (Type, bool) {
	for t, n := range typeNames {
		if n == s {
			return t, true
		}
	}
	if len(s) > 4 && s[:4] == "TYPE" {
		if n, err := strconv.ParseUint(s[4:], 10, 16); err == nil {
			return Type(n), true
		}
	}
	return 0, false
}

// Rcode is a DNS response code (RFC 1035 §4.1.1).
type Rcode int

// The response codes that callers see in an Answer. Other codes are
// reported as temporary errors, never as answers.
const (
	RcodeSuccess  Rcode = 0 // NOERROR: records, or NODATA when Records is empty
	RcodeNXDomain Rcode = 3 // NXDOMAIN: the name does not exist
)

func (r Rcode) String() string {
	switch r {
	case RcodeSuccess:
		return "NOERROR"
	case RcodeNXDomain:
		return "NXDOMAIN"
	}
	return "RCODE" + strconv.Itoa(int(r))
}

// TLSA is the data of a TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	Data         []byte // the certificate association data
}

// Record is one resource record of an answer, decoded into the fields its
// type uses. Names are lower-case, fully qualified, without the final dot.
type Record struct {
	Name   string
	Type   Type
	TTL    uint32
	IP     netip.Addr // A, AAAA
	Target string     // MX exchange, CNAME/PTR/NS target
	Pref   uint16     // MX preference
	TXT    []string   // TXT character-strings, in order, not joined
	TLSA   *TLSA      // TLSA
}

// Answer is the outcome of a query that the DNS answered: records, or
// NXDOMAIN, or NODATA (RcodeSuccess with no Records).
//
// An Answer returned by Query may be shared with other callers through the
// cache: treat it as read-only.
type Answer struct {
	Name    string   // the name asked for, normalised
	Type    Type     // the type asked for
	Rcode   Rcode    // RcodeSuccess or RcodeNXDomain
	Records []Record // records of Type at the end of the CNAME chain
	CNAME   []string // the CNAME chain followed from Name, in order (targets)
	TTL     time.Duration
	// Secure is true when the answer was validated (AD bit set) by a
	// resolver that is trusted for DNSSEC, including every link of the
	// CNAME chain.
	Secure bool
}

// NXDomain reports whether the name does not exist.
func (a *Answer) NXDomain() bool { return a.Rcode == RcodeNXDomain }

// NoData reports whether the name exists but has no records of the type.
func (a *Answer) NoData() bool { return a.Rcode == RcodeSuccess && len(a.Records) == 0 }

// Querier is what consumers of DNS depend on. *Resolver and the
// internal/testkit/dnstest fakes implement it.
type Querier interface {
	Query(ctx context.Context, name string, t Type) (*Answer, error)
}

// Errors. Every error Query returns for a failed lookup wraps ErrTemporary
// and exactly one of the more specific errors.
var (
	ErrTemporary = errors.New("temporary DNS failure")
	ErrTimeout   = errors.New("DNS timeout")
	ErrServFail  = errors.New("DNS SERVFAIL")
	ErrRefused   = errors.New("DNS query refused or answered with an unexpected rcode")
	ErrTransport = errors.New("DNS transport failure")
	// ErrBadName is returned, not wrapped in ErrTemporary, for a name that
	// cannot be queried (empty label, label over 63 or name over 253 octets).
	ErrBadName = errors.New("invalid DNS name")
)

// QueryError describes a failed query. It wraps ErrTemporary and the
// specific cause, so errors.Is(err, ErrTimeout) and errors.Is(err,
// ErrTemporary) both hold for a timeout.
type QueryError struct {
	Name   string
	Type   Type
	Server string // the last server tried, host:port, if any
	Kind   error  // ErrTimeout, ErrServFail, ErrRefused or ErrTransport
	Err    error  // the underlying error, if any
}

func (e *QueryError) Error() string {
	s := "lookup " + e.Name + " " + e.Type.String()
	if e.Server != "" {
		s += " via " + e.Server
	}
	s += ": " + e.Kind.Error()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is match ErrTemporary, the Kind and the cause.
func (e *QueryError) Unwrap() []error {
	errs := []error{ErrTemporary, e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Temporary is true: a QueryError is always worth retrying later.
func (e *QueryError) Temporary() bool { return true }
