package resolver

import (
	"errors"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// seedReplies returns packed replies of the kinds decodeResponse meets.
func seedReplies(tb testing.TB) [][]byte {
	tb.Helper()
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	soa := rr("example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60")
	reply := func(name string, t uint16, rcode int, answer []dns.RR, ns []dns.RR, edit func(*dns.Msg)) []byte {
		q := new(dns.Msg)
		q.SetQuestion(name, t)
		q.SetEdns0(ednsSize, true)
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		m.Answer, m.Ns = answer, ns
		m.SetEdns0(ednsSize, true)
		m.Compress = true
		if edit != nil {
			edit(m)
		}
		wire, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		return wire
	}
	ok := dns.RcodeSuccess
	return [][]byte{
		reply("example.com.", dns.TypeA, ok, []dns.RR{rr("example.com. 300 IN A 192.0.2.1"), rr("example.com. 300 IN A 192.0.2.2")}, nil,
			func(m *dns.Msg) { m.AuthenticatedData = true }),
		reply("example.com.", dns.TypeAAAA, ok, []dns.RR{rr("example.com. 300 IN AAAA 2001:db8::1")}, nil, nil),
		reply("example.com.", dns.TypeMX, ok, []dns.RR{rr("example.com. 300 IN MX 10 mx.example.com.")}, nil, nil),
		reply("example.com.", dns.TypeTXT, ok, []dns.RR{rr(`example.com. 300 IN TXT "v=spf1" " -all"`)}, nil, nil),
		reply("example.com.", dns.TypeTLSA, ok, []dns.RR{rr("example.com. 300 IN TLSA 3 1 1 0123456789abcdef")}, nil, nil),
		reply("example.com.", dns.TypePTR, ok, []dns.RR{rr("example.com. 300 IN PTR host.example.net.")}, nil, nil),
		reply("example.com.", dns.TypeA, ok, []dns.RR{
			rr("example.com. 300 IN CNAME a.example.net."),
			rr("a.example.net. 100 IN CNAME b.example.org."),
			rr("b.example.org. 300 IN A 192.0.2.3"),
		}, nil, nil),
		reply("example.com.", dns.TypeA, ok, []dns.RR{rr("example.com. 300 IN CNAME a.example.net.")}, nil, nil),
		reply("example.com.", dns.TypeA, ok, []dns.RR{
			rr("example.com. 300 IN CNAME a.example.net."),
			rr("a.example.net. 300 IN CNAME example.com."),
		}, nil, nil),
		reply("example.com.", dns.TypeA, dns.RcodeNameError, nil, []dns.RR{soa}, nil),
		reply("example.com.", dns.TypeA, ok, nil, []dns.RR{soa}, nil),
		reply("example.com.", dns.TypeA, dns.RcodeServerFailure, nil, nil, nil),
		reply("example.com.", dns.TypeA, dns.RcodeRefused, nil, nil, nil),
		reply("example.com.", dns.TypeA, ok, nil, nil, func(m *dns.Msg) { m.Truncated = true }),
		reply("other.example.", dns.TypeA, ok, nil, nil, nil),
		{},
		[]byte("\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"),
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, wire := range seedReplies(f) {
		f.Add(wire, uint16(TypeA))
	}
	f.Fuzz(func(t *testing.T, wire []byte, qtype uint16) {
		check := func(qname string, qt Type) {
			rep, err := decodeResponse(wire, qname, qt)
			if err != nil {
				if rep != nil {
					t.Fatalf("reply %+v with error %v", rep, err)
				}
				if _, ok := err.(*QueryError); !ok {
					t.Fatalf("error %T is not a *QueryError", err)
				}
				return
			}
			a := rep.ans
			if a.Name != qname || a.Type != qt {
				t.Fatalf("answer for %s %s, asked %s %s", a.Name, a.Type, qname, qt)
			}
			if a.Rcode != RcodeSuccess && a.Rcode != RcodeNXDomain {
				t.Fatalf("rcode %v in an answer", a.Rcode)
			}
			if len(a.CNAME) > maxCNAME {
				t.Fatalf("CNAME chain of %d", len(a.CNAME))
			}
			if a.Rcode == RcodeNXDomain && len(a.Records) > 0 {
				t.Fatal("records with NXDOMAIN")
			}
			if rep.incomplete && (len(a.CNAME) == 0 || len(a.Records) > 0) {
				t.Fatalf("incomplete reply %+v", a)
			}
			for i, c := range a.CNAME {
				if c == qname || slices.Contains(a.CNAME[:i], c) {
					t.Fatalf("CNAME loop %q", a.CNAME)
				}
			}
			for _, rec := range a.Records {
				if rec.Type != qt || rec.Name != rep.last() {
					t.Fatalf("record %v does not answer %s %s", rec, rep.last(), qt)
				}
				_ = rec.String()
			}
		}
		check("example.com", Type(qtype))
		// Ask the question the reply claims to answer, to get past the
		// question check.
		var m dns.Msg
		if m.Unpack(wire) == nil && len(m.Question) == 1 {
			if name := NormalizeName(m.Question[0].Name); checkName(name) == nil {
				check(name, Type(m.Question[0].Qtype))
			}
		}
	})
}

func TestDecodeSeeds(t *testing.T) {
	seeds := seedReplies(t)
	tests := []struct {
		name       string
		wire       []byte
		qtype      Type
		wantErr    error
		wantN      int
		wantCNAME  int
		wantTTL    uint32
		incomplete bool
	}{
		{"A", seeds[0], TypeA, nil, 2, 0, 300, false},
		{"chain", seeds[6], TypeA, nil, 1, 2, 100, false},
		{"incomplete chain", seeds[7], TypeA, nil, 0, 1, 300, true},
		{"loop", seeds[8], TypeA, ErrServFail, 0, 0, 0, false},
		{"NXDOMAIN", seeds[9], TypeA, nil, 0, 0, 60, false},
		{"NODATA", seeds[10], TypeA, nil, 0, 0, 60, false},
		{"SERVFAIL", seeds[11], TypeA, ErrServFail, 0, 0, 0, false},
		{"REFUSED", seeds[12], TypeA, ErrRefused, 0, 0, 0, false},
		{"wrong type", seeds[0], TypeAAAA, ErrTransport, 0, 0, 0, false},
		{"wrong name", seeds[14], TypeA, ErrTransport, 0, 0, 0, false},
		{"empty", seeds[15], TypeA, ErrTransport, 0, 0, 0, false},
		{"header only", seeds[16], TypeA, ErrTransport, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := decodeResponse(tt.wire, "example.com", tt.qtype)
			if tt.wantErr != nil {
				var qe *QueryError
				if !errors.As(err, &qe) || qe.Kind != tt.wantErr {
					t.Fatalf("err = %v, want kind %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.ans.Records) != tt.wantN || len(rep.ans.CNAME) != tt.wantCNAME || rep.ttl != tt.wantTTL || rep.incomplete != tt.incomplete {
				t.Errorf("got %+v ttl %d incomplete %v", rep.ans, rep.ttl, rep.incomplete)
			}
		})
	}
}
