package resolver

import (
	"errors"
	"math"
	"strconv"

	"github.com/miekg/dns"
)

// maxCNAME is the longest CNAME chain Query follows, counting links both
// inside one reply and across the queries that chase an incomplete chain.
const maxCNAME = 8

var (
	errMalformed   = errors.New("malformed reply")
	errNotResponse = errors.New("reply is not a response to a query")
	errQuestion    = errors.New("reply does not answer the question asked")
	errCNAMELoop   = errors.New("CNAME loop")
	errCNAMELong   = errors.New("CNAME chain too long")
)

// reply is one DNS response decoded for the question that was asked.
type reply struct {
	ans Answer // Name, Type, Rcode, Records, CNAME; TTL and Secure are not set
	// ttl is the cache lifetime of ans in seconds: the minimum TTL of the
	// records and CNAMEs used or, for a negative answer, of the CNAMEs and
	// min(SOA TTL, SOA MINIMUM) (RFC 2308 §5). It is 0 when the answer must
	// not be cached, as for a negative answer without an SOA. For an
	// incomplete reply it is the minimum TTL of its CNAMEs.
	ttl uint32
	// ad is the AD bit of the reply; whether to believe it depends on the
	// server.
	ad bool
	// incomplete is set when the reply's CNAME chain ends at a target that
	// has neither records nor a negative answer: the rest of the chain
	// must be chased with a query for the last target.
	incomplete bool
}

// last returns the name at the end of the reply's CNAME chain.
func (r *reply) last() string {
	if n := len(r.ans.CNAME); n > 0 {
		return r.ans.CNAME[n-1]
	}
	return r.ans.Name
}

// decodeResponse unpacks the wire-format reply to a query for qname (a name
// already normalised by NormalizeName) and type qtype, checks that it
// answers that question, and extracts the CNAME chain from qname and the
// records of type qtype at its end. Failures are returned as *QueryError
// without Server; the message ID and the TC bit are the caller's business.
// It must not panic on any input.
func decodeResponse(wire []byte, qname string, qtype Type) (*reply, error) {
	fail := func(kind, err error) (*reply, error) {
		return nil, &QueryError{Name: qname, Type: qtype, Kind: kind, Err: err}
	}
	var m dns.Msg
	if err := m.Unpack(wire); err != nil {
		return fail(ErrTransport, errMalformed)
	}
	if !m.Response || m.Opcode != dns.OpcodeQuery {
		return fail(ErrTransport, errNotResponse)
	}
	if len(m.Question) != 1 {
		return fail(ErrTransport, errQuestion)
	}
	q := m.Question[0]
	if qn, ok := wireName(q.Name); !ok || q.Qtype != uint16(qtype) || q.Qclass != dns.ClassINET || qn != qname {
		return fail(ErrTransport, errQuestion)
	}
	rep := &reply{ad: m.AuthenticatedData}
	rep.ans.Name, rep.ans.Type = qname, qtype
	switch m.Rcode {
	case dns.RcodeSuccess:
		rep.ans.Rcode = RcodeSuccess
	case dns.RcodeNameError:
		rep.ans.Rcode = RcodeNXDomain
	case dns.RcodeServerFailure:
		return fail(ErrServFail, nil)
	default:
		return fail(ErrRefused, errors.New(rcodeName(m.Rcode)))
	}

	ttl := uint32(math.MaxUint32)
	cur := qname
	for {
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Rrtype != uint16(qtype) || h.Class != dns.ClassINET {
				continue
			}
			if rec, ok := fromRR(rr); ok && rec.Name == cur {
				rep.ans.Records = append(rep.ans.Records, rec)
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(rep.ans.Records) > 0 || qtype == TypeCNAME {
			break
		}
		target, cttl, ok := cnameOf(m.Answer, cur)
		if !ok {
			break
		}
		if target == qname || contains(rep.ans.CNAME, target) {
			return fail(ErrServFail, errCNAMELoop)
		}
		if len(rep.ans.CNAME) == maxCNAME {
			return fail(ErrServFail, errCNAMELong)
		}
		rep.ans.CNAME = append(rep.ans.CNAME, target)
		ttl = min(ttl, cttl)
		cur = target
	}

	soaTTL, haveSOA := negativeTTL(m.Ns)
	switch {
	case rep.ans.Rcode == RcodeNXDomain:
		// NXDOMAIN is about the end of the chain (RFC 6604 §3); records
		// next to it would contradict it.
		rep.ans.Records = nil
		if !haveSOA {
			ttl = 0
		} else {
			ttl = min(ttl, soaTTL)
		}
	case len(rep.ans.Records) > 0:
	case haveSOA:
		ttl = min(ttl, soaTTL) // NODATA
	case len(rep.ans.CNAME) > 0:
		rep.incomplete = true // ttl is that of the CNAMEs so far
	default:
		ttl = 0 // NODATA without an SOA: an answer, but not cacheable
	}
	rep.ttl = ttl
	return rep, nil
}

// cnameOf finds the CNAME record owned by name in rrs.
func cnameOf(rrs []dns.RR, name string) (target string, ttl uint32, ok bool) {
	for _, rr := range rrs {
		c, isCNAME := rr.(*dns.CNAME)
		if !isCNAME || c.Hdr.Class != dns.ClassINET {
			continue
		}
		rec, ok := fromRR(c)
		if !ok || rec.Name != name {
			continue
		}
		return rec.Target, c.Hdr.Ttl, true
	}
	return "", 0, false
}

// negativeTTL returns the negative caching TTL that the first SOA record of
// an authority section gives, min(TTL, MINIMUM) (RFC 2308 §5).
func negativeTTL(ns []dns.RR) (uint32, bool) {
	for _, rr := range ns {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Class == dns.ClassINET {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return "rcode " + s
	}
	return "rcode " + strconv.Itoa(rcode)
}
