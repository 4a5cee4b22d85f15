package dnstest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// Fault is a failure the zone answers with instead of data.
type Fault int

// The faults a Zone can inject for a name (and type).
const (
	NoFault   Fault = iota
	ServFail        // answer SERVFAIL
	Timeout         // never answer (the fake returns a timeout error at once)
	Refused         // answer REFUSED
	Truncated       // the loopback Server truncates UDP answers, forcing TCP
)

// NegativeTTL is the TTL of NXDOMAIN and NODATA answers (the SOA minimum of
// the fake zone).
const NegativeTTL = 60 * time.Second

type key struct {
	name string
	t    resolver.Type
}

// QueryLog is one query a Zone received.
type QueryLog struct {
	Name string
	Type resolver.Type
}

// Zone is an in-memory set of records with injectable faults. The zero value
// is not usable: call NewZone. A Zone is safe for concurrent use.
type Zone struct {
	mu      sync.Mutex
	rrs     map[key][]resolver.Record
	names   map[string]bool // every name that exists, including empty non-terminals
	faults  map[key]Fault   // t == 0: every type of the name
	secure  map[string]bool // name (and its descendants) -> AD
	queries []QueryLog
}

// NewZone returns an empty zone. Answers are insecure unless SetSecure says
// otherwise.
func NewZone() *Zone {
	return &Zone{
		rrs:    map[key][]resolver.Record{},
		names:  map[string]bool{},
		faults: map[key]Fault{},
		secure: map[string]bool{},
	}
}

// Add parses records in presentation format (`name. TTL IN TYPE data`) and
// adds them. It panics on a record it cannot parse: test data is wrong.
func (z *Zone) Add(records ...string) *Zone {
	for _, text := range records {
		rec, err := resolver.ParseRecord(text)
		if err != nil {
			panic(fmt.Sprintf("dnstest: %v", err))
		}
		z.AddRecord(rec)
	}
	return z
}

// AddRecord adds a decoded record. A zero TTL becomes 300.
func (z *Zone) AddRecord(recs ...resolver.Record) *Zone {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, rec := range recs {
		rec.Name = resolver.NormalizeName(rec.Name)
		if rec.TTL == 0 {
			rec.TTL = 300
		}
		k := key{rec.Name, rec.Type}
		z.rrs[k] = append(z.rrs[k], rec)
		z.markName(rec.Name)
	}
	return z
}

// AddName makes a name exist without records (queries for it give NODATA).
func (z *Zone) AddName(name string) *Zone {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.markName(resolver.NormalizeName(name))
	return z
}

func (z *Zone) markName(name string) {
	for n := name; n != ""; {
		z.names[n] = true
		i := strings.IndexByte(n, '.')
		if i < 0 {
			break
		}
		n = n[i+1:]
	}
}

// SetFault makes queries for name answer with f; t == 0 means every type.
func (z *Zone) SetFault(name string, t resolver.Type, f Fault) *Zone {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.faults[key{resolver.NormalizeName(name), t}] = f
	return z
}

// SetSecure marks answers at name and below as DNSSEC-validated (or not).
// The most specific setting wins; "" or "." sets the default for all names.
func (z *Zone) SetSecure(name string, secure bool) *Zone {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = resolver.NormalizeName(name)
	if name == "." {
		name = ""
	}
	z.secure[name] = secure
	return z
}

// Queries returns the queries received so far, in order.
func (z *Zone) Queries() []QueryLog {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]QueryLog(nil), z.queries...)
}

// ResetQueries forgets the query log.
func (z *Zone) ResetQueries() {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.queries = nil
}

// FaultFor returns the fault injected for name and type, if any.
func (z *Zone) FaultFor(name string, t resolver.Type) Fault {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.faultLocked(resolver.NormalizeName(name), t)
}

func (z *Zone) faultLocked(name string, t resolver.Type) Fault {
	if f, ok := z.faults[key{name, t}]; ok {
		return f
	}
	return z.faults[key{name, 0}]
}

func (z *Zone) secureLocked(name string) bool {
	for n := name; ; {
		if s, ok := z.secure[n]; ok {
			return s
		}
		if n == "" {
			return false
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			n = ""
		} else {
			n = n[i+1:]
		}
	}
}

// Query implements resolver.Querier: it logs the query, applies faults,
// follows CNAMEs (at most 8) and answers NXDOMAIN or NODATA as a real
// resolver would.
func (z *Zone) Query(ctx context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nil, &resolver.QueryError{Name: name, Type: t, Kind: resolver.ErrTimeout, Err: err}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	qname := resolver.NormalizeName(name)
	z.queries = append(z.queries, QueryLog{qname, t})
	ans := &resolver.Answer{Name: qname, Type: t, Secure: true}
	cur := qname
	for hops := 0; ; hops++ {
		switch z.faultLocked(cur, t) {
		case ServFail:
			return nil, &resolver.QueryError{Name: qname, Type: t, Kind: resolver.ErrServFail}
		case Timeout:
			return nil, &resolver.QueryError{Name: qname, Type: t, Kind: resolver.ErrTimeout}
		case Refused:
			return nil, &resolver.QueryError{Name: qname, Type: t, Kind: resolver.ErrRefused}
		}
		ans.Secure = ans.Secure && z.secureLocked(cur)
		if recs := z.rrs[key{cur, t}]; len(recs) > 0 {
			ans.Records = append([]resolver.Record(nil), recs...)
			ans.TTL = minTTL(recs)
			return ans, nil
		}
		if t != resolver.TypeCNAME {
			if c := z.rrs[key{cur, resolver.TypeCNAME}]; len(c) > 0 && hops < 8 {
				cur = c[0].Target
				ans.CNAME = append(ans.CNAME, cur)
				continue
			}
		}
		if !z.names[cur] {
			ans.Rcode = resolver.RcodeNXDomain
		}
		ans.TTL = NegativeTTL
		return ans, nil
	}
}

func minTTL(recs []resolver.Record) time.Duration {
	m := recs[0].TTL
	for _, r := range recs[1:] {
		m = min(m, r.TTL)
	}
	return time.Duration(m) * time.Second
}
