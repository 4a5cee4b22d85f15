package resolver

import (
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// NormalizeName lower-cases the ASCII letters of a domain name (RFC 4343:
// other octets are compared as they are) and removes one trailing dot. It
// allocates only when the name has upper-case letters.
func NormalizeName(name string) string {
	if n := len(name); n > 1 && name[n-1] == '.' {
		name = name[:n-1]
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// ParseRecord parses one resource record in zone-file presentation format,
// for example `mx.example.com. 300 IN A 192.0.2.1`. Relative names are
// not allowed; the TTL defaults to 3600.
func ParseRecord(text string) (Record, error) {
	rr, err := dns.NewRR(text)
	if err != nil {
		return Record{}, fmt.Errorf("parse record %q: %w", text, err)
	}
	if rr == nil {
		return Record{}, fmt.Errorf("parse record %q: empty", text)
	}
	rec, ok := fromRR(rr)
	if !ok {
		return Record{}, fmt.Errorf("parse record %q: type %s is not supported", text, dns.TypeToString[rr.Header().Rrtype])
	}
	return rec, nil
}

// String returns the record in presentation format.
func (r Record) String() string {
	rr := toRR(r)
	if rr == nil {
		return fmt.Sprintf("%s\t%d\tIN\t%s\t\\# 0", fqdn(r.Name), r.TTL, r.Type)
	}
	return rr.String()
}

// fromRR converts a miekg/dns record into a Record, names and TXT strings
// decoded to their octets. ok is false for types sidecar does not decode
// and for names that have no octet form (a dot inside a label).
func fromRR(rr dns.RR) (Record, bool) {
	h := rr.Header()
	owner, ok := wireName(h.Name)
	rec := Record{Name: owner, Type: Type(h.Rrtype), TTL: h.Ttl}
	if !ok {
		return rec, false
	}
	switch v := rr.(type) {
	case *dns.A:
		ip, ok := netip.AddrFromSlice(v.A.To4())
		if !ok {
			return rec, false
		}
		rec.IP = ip
	case *dns.AAAA:
		ip, ok := netip.AddrFromSlice(v.AAAA.To16())
		if !ok {
			return rec, false
		}
		rec.IP = ip
	case *dns.MX:
		rec.Pref = v.Preference
		rec.Target, ok = wireName(v.Mx)
	case *dns.CNAME:
		rec.Target, ok = wireName(v.Target)
	case *dns.PTR:
		rec.Target, ok = wireName(v.Ptr)
	case *dns.NS:
		rec.Target, ok = wireName(v.Ns)
	case *dns.TXT:
		rec.TXT = make([]string, len(v.Txt))
		for i, s := range v.Txt {
			rec.TXT[i] = decodeTXT(s)
		}
	case *dns.TLSA:
		data, err := hexDecode(v.Certificate)
		if err != nil {
			return rec, false
		}
		rec.TLSA = &TLSA{Usage: v.Usage, Selector: v.Selector, MatchingType: v.MatchingType, Data: data}
	default:
		return rec, false
	}
	return rec, ok
}

// toRR converts a Record back into a miekg/dns record, names and TXT
// strings encoded in presentation form, or nil when the type is not one
// sidecar decodes.
func toRR(r Record) dns.RR {
	h := dns.RR_Header{Name: fqdn(r.Name), Rrtype: uint16(r.Type), Class: dns.ClassINET, Ttl: r.TTL}
	switch r.Type {
	case TypeA:
		return &dns.A{Hdr: h, A: r.IP.AsSlice()}
	case TypeAAAA:
		return &dns.AAAA{Hdr: h, AAAA: r.IP.AsSlice()}
	case TypeMX:
		return &dns.MX{Hdr: h, Preference: r.Pref, Mx: fqdn(r.Target)}
	case TypeCNAME:
		return &dns.CNAME{Hdr: h, Target: fqdn(r.Target)}
	case TypePTR:
		return &dns.PTR{Hdr: h, Ptr: fqdn(r.Target)}
	case TypeNS:
		return &dns.NS{Hdr: h, Ns: fqdn(r.Target)}
	case TypeTXT:
		txt := make([]string, len(r.TXT))
		for i, s := range r.TXT {
			txt[i] = encodeTXT(s)
		}
		return &dns.TXT{Hdr: h, Txt: txt}
	case TypeTLSA:
		if r.TLSA == nil {
			return nil
		}
		return &dns.TLSA{Hdr: h, Usage: r.TLSA.Usage, Selector: r.TLSA.Selector,
			MatchingType: r.TLSA.MatchingType, Certificate: fmt.Sprintf("%X", r.TLSA.Data)}
	}
	return nil
}

// fqdn returns a name of octets in presentation form with the final dot.
func fqdn(name string) string { return dns.Fqdn(FormatName(name)) }

func hexDecode(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd hex length")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad hex digit")
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
