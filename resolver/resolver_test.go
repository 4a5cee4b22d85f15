package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestQueryDecodesRecords(t *testing.T) {
	data := map[resolver.Type][]string{
		resolver.TypeA: {
			"host.example.com. 300 IN A 192.0.2.1",
			"host.example.com. 300 IN A 192.0.2.2",
		},
		resolver.TypeAAAA: {"host.example.com. 300 IN AAAA 2001:db8::1"},
		resolver.TypeMX: {
			"example.com. 3600 IN MX 10 mx1.example.com.",
			"example.com. 3600 IN MX 20 mx2.example.com.",
		},
		resolver.TypeTXT: {
			`txt.example.com. 300 IN TXT "v=spf1 " "-all"`,
			`txt.example.com. 300 IN TXT "quote \" and semicolon ;"`,
		},
		resolver.TypePTR:   {"1.2.0.192.in-addr.arpa. 300 IN PTR host.example.com."},
		resolver.TypeTLSA:  {"_25._tcp.mx1.example.com. 300 IN TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"},
		resolver.TypeCNAME: {"alias.example.com. 300 IN CNAME host.example.com."},
		resolver.TypeNS:    {"example.com. 300 IN NS ns1.example.net."},
	}
	z := dnstest.NewZone()
	for _, texts := range data {
		z.Add(texts...)
	}
	s := dnstest.NewServer(t, z)
	r := newResolver(t, resolver.Options{}, s.Addr())

	tests := []struct {
		name  string
		qname string
		typ   resolver.Type
	}{
		{"A", "host.example.com", resolver.TypeA},
		{"AAAA", "host.example.com.", resolver.TypeAAAA},
		{"MX", "EXAMPLE.com", resolver.TypeMX},
		{"TXT", "txt.example.com", resolver.TypeTXT},
		{"PTR", "1.2.0.192.in-addr.arpa", resolver.TypePTR},
		{"TLSA", "_25._tcp.mx1.example.com", resolver.TypeTLSA},
		{"CNAME", "alias.example.com", resolver.TypeCNAME},
		{"NS", "example.com", resolver.TypeNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := query(t, r, tt.qname, tt.typ)
			want := records(t, data[tt.typ]...)
			if !reflect.DeepEqual(got.Records, want) {
				t.Errorf("records:\n got %v\nwant %v", got.Records, want)
			}
			if got.Name != resolver.NormalizeName(tt.qname) || got.Type != tt.typ || got.Rcode != resolver.RcodeSuccess || len(got.CNAME) != 0 {
				t.Errorf("answer = %+v", got)
			}
			if want := time.Duration(want[0].TTL) * time.Second; got.TTL != want {
				t.Errorf("TTL = %v, want %v", got.TTL, want)
			}
		})
	}
	t.Run("TLSA data", func(t *testing.T) {
		got := query(t, r, "_25._tcp.mx1.example.com", resolver.TypeTLSA).Records[0].TLSA
		if got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 || len(got.Data) != 32 || got.Data[0] != 0x01 || got.Data[31] != 0xEF {
			t.Errorf("TLSA = %+v", got)
		}
	})
	t.Run("TXT strings kept apart", func(t *testing.T) {
		got := query(t, r, "txt.example.com", resolver.TypeTXT).Records[0].TXT
		if want := []string{"v=spf1 ", "-all"}; !reflect.DeepEqual(got, want) {
			t.Errorf("TXT = %q, want %q", got, want)
		}
	})
}

func TestNegativeAnswers(t *testing.T) {
	_, s := serve(t,
		"host.example.com. 300 IN A 192.0.2.1",
		"a.b.example.com. 300 IN A 192.0.2.2",
	)
	r := newResolver(t, resolver.Options{}, s.Addr())
	tests := []struct {
		name      string
		qname     string
		typ       resolver.Type
		wantRcode resolver.Rcode
	}{
		{"NXDOMAIN", "nx.example.com", resolver.TypeA, resolver.RcodeNXDomain},
		{"NODATA", "host.example.com", resolver.TypeMX, resolver.RcodeSuccess},
		{"empty non-terminal", "b.example.com", resolver.TypeA, resolver.RcodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := query(t, r, tt.qname, tt.typ)
			if got.Rcode != tt.wantRcode || len(got.Records) != 0 {
				t.Errorf("got rcode %v records %v, want %v and none", got.Rcode, got.Records, tt.wantRcode)
			}
			if got.NXDomain() != (tt.wantRcode == resolver.RcodeNXDomain) || got.NoData() != (tt.wantRcode == resolver.RcodeSuccess) {
				t.Errorf("NXDomain() = %v, NoData() = %v", got.NXDomain(), got.NoData())
			}
			if got.TTL != dnstest.NegativeTTL {
				t.Errorf("TTL = %v, want %v", got.TTL, dnstest.NegativeTTL)
			}
		})
	}
}

var errKinds = []error{resolver.ErrTimeout, resolver.ErrServFail, resolver.ErrRefused, resolver.ErrTransport}

func checkKind(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", want)
	}
	if !errors.Is(err, resolver.ErrTemporary) {
		t.Errorf("errors.Is(%v, ErrTemporary) = false", err)
	}
	for _, k := range errKinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(%v, %v) = %v", err, k, got)
		}
	}
	var qe *resolver.QueryError
	if !errors.As(err, &qe) {
		t.Errorf("%v (%T) is not a *QueryError", err, err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		fault  dnstest.Fault
		mangle func(req, resp *dns.Msg)
		wire   func([]byte) []byte
		dead   bool
		want   error
	}{
		{name: "SERVFAIL", fault: dnstest.ServFail, want: resolver.ErrServFail},
		{name: "REFUSED", fault: dnstest.Refused, want: resolver.ErrRefused},
		{name: "timeout", fault: dnstest.Timeout, want: resolver.ErrTimeout},
		{name: "port unreachable", dead: true, want: resolver.ErrTransport},
		{name: "NOTIMP", mangle: func(_, m *dns.Msg) { m.Rcode = dns.RcodeNotImplemented }, want: resolver.ErrRefused},
		{name: "FORMERR", mangle: func(_, m *dns.Msg) { m.Rcode = dns.RcodeFormatError }, want: resolver.ErrRefused},
		{name: "YXDOMAIN", mangle: func(_, m *dns.Msg) { m.Rcode = dns.RcodeYXDomain }, want: resolver.ErrRefused},
		{name: "wrong question name", mangle: func(_, m *dns.Msg) { m.Question[0].Name = "other.example.com." }, want: resolver.ErrTransport},
		{name: "wrong question type", mangle: func(_, m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }, want: resolver.ErrTransport},
		{name: "no question", mangle: func(_, m *dns.Msg) { m.Question = nil }, want: resolver.ErrTransport},
		{name: "not a response", mangle: func(_, m *dns.Msg) { m.Response = false }, want: resolver.ErrTransport},
		{name: "garbage", wire: func(w []byte) []byte { return append(w[:2:2], "\xff\xff\xff\xffgarbage"...) }, want: resolver.ErrTransport},
		{name: "cut message", wire: func(w []byte) []byte { return w[:len(w)-3] }, want: resolver.ErrTransport},
		{name: "wrong ID ignored", mangle: func(req, m *dns.Msg) { m.Id = req.Id + 1 }, want: resolver.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, s := serve(t, "host.example.com. 300 IN A 192.0.2.1")
			addr := s.Addr()
			if tt.dead {
				addr = deadAddr(t)
			}
			z.SetFault("host.example.com", 0, tt.fault)
			s.Mangle(tt.mangle)
			s.MangleWire(tt.wire)
			r := newResolver(t, resolver.Options{Timeout: shortTimeout}, addr)
			ans, err := r.Query(context.Background(), "host.example.com", resolver.TypeA)
			if ans != nil {
				t.Errorf("answer = %+v, want nil", ans)
			}
			checkKind(t, err, tt.want)
			var qe *resolver.QueryError
			if errors.As(err, &qe) && (qe.Server != addr || qe.Name != "host.example.com" || qe.Type != resolver.TypeA) {
				t.Errorf("QueryError = %+v, want server %s", qe, addr)
			}
			if st := r.Stats(); st.Errors != 1 {
				t.Errorf("Stats().Errors = %d, want 1", st.Errors)
			}
		})
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name  string
		fault dnstest.Fault
		dead  bool
	}{
		{name: "timeout", fault: dnstest.Timeout},
		{name: "SERVFAIL", fault: dnstest.ServFail},
		{name: "REFUSED", fault: dnstest.Refused},
		{name: "port unreachable", dead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, badSrv := serve(t)
			bad.SetFault("host.example.com", 0, tt.fault)
			badAddr := badSrv.Addr()
			if tt.dead {
				badAddr = deadAddr(t)
			}
			_, good := serve(t, "host.example.com. 300 IN A 192.0.2.1")
			r := newResolver(t, resolver.Options{Timeout: shortTimeout}, badAddr, good.Addr())
			got := query(t, r, "host.example.com", resolver.TypeA)
			if len(got.Records) != 1 || got.Records[0].IP != netip.MustParseAddr("192.0.2.1") {
				t.Errorf("records = %v", got.Records)
			}
			if !tt.dead && badSrv.UDPQueries() != 1 {
				t.Errorf("first server got %d queries, want 1", badSrv.UDPQueries())
			}
			if good.UDPQueries() != 1 {
				t.Errorf("second server got %d queries, want 1", good.UDPQueries())
			}
		})
	}
}

func TestAttempts(t *testing.T) {
	tests := []struct {
		name     string
		fault    dnstest.Fault
		attempts int
		want     error
		wantSent int // per server
	}{
		{"timeout retried", dnstest.Timeout, 2, resolver.ErrTimeout, 2},
		{"timeout three rounds", dnstest.Timeout, 3, resolver.ErrTimeout, 3},
		{"SERVFAIL not asked again", dnstest.ServFail, 3, resolver.ErrServFail, 1},
		{"REFUSED not asked again", dnstest.Refused, 3, resolver.ErrRefused, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := dnstest.NewZone().SetFault("host.example.com", 0, tt.fault)
			s1, s2 := dnstest.NewServer(t, z), dnstest.NewServer(t, z)
			r := newResolver(t, resolver.Options{Timeout: 50 * time.Millisecond, Attempts: tt.attempts}, s1.Addr(), s2.Addr())
			_, err := r.Query(context.Background(), "host.example.com", resolver.TypeA)
			checkKind(t, err, tt.want)
			if s1.UDPQueries() != tt.wantSent || s2.UDPQueries() != tt.wantSent {
				t.Errorf("queries = %d and %d, want %d each", s1.UDPQueries(), s2.UDPQueries(), tt.wantSent)
			}
			if got := r.Stats().Queries; got != uint64(2*tt.wantSent) {
				t.Errorf("Stats().Queries = %d, want %d", got, 2*tt.wantSent)
			}
		})
	}
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	var big []string
	for i := range 40 {
		big = append(big, `big.example.com. 300 IN TXT "`+strings.Repeat(string(rune('a'+i%26)), 200)+`"`)
	}
	z, s := serve(t, append(big, "tc.example.com. 300 IN A 192.0.2.1")...)
	z.SetFault("tc.example.com", resolver.TypeA, dnstest.Truncated)
	tests := []struct {
		name        string
		qname       string
		typ         resolver.Type
		wantRecords int
	}{
		{"Truncated fault", "tc.example.com", resolver.TypeA, 1},
		{"answer over 1232 octets", "big.example.com", resolver.TypeTXT, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, resolver.Options{}, s.Addr())
			udp, tcp := s.UDPQueries(), s.TCPQueries()
			got := query(t, r, tt.qname, tt.typ)
			if len(got.Records) != tt.wantRecords {
				t.Errorf("got %d records, want %d", len(got.Records), tt.wantRecords)
			}
			if d := s.UDPQueries() - udp; d != 1 {
				t.Errorf("UDP queries = %d, want 1", d)
			}
			if d := s.TCPQueries() - tcp; d != 1 {
				t.Errorf("TCP queries = %d, want 1", d)
			}
			if got := r.Stats().Queries; got != 2 {
				t.Errorf("Stats().Queries = %d, want 2", got)
			}
		})
	}
}

func TestSecure(t *testing.T) {
	z, s := serve(t,
		"signed.example. 300 IN A 192.0.2.1",
		"unsigned.example. 300 IN A 192.0.2.2",
		"to-unsigned.signed.example. 300 IN CNAME unsigned.example.",
		"to-signed.signed.example. 300 IN CNAME signed.example.",
	)
	z.SetSecure("signed.example", true)
	// Chasing: the server leaves CNAME chains for the resolver to follow.
	s.Mangle(func(_, m *dns.Msg) {
		if strings.HasPrefix(m.Question[0].Name, "chase-") {
			m.Answer = m.Answer[:1]
			m.Ns = nil
		}
	})
	z.Add("chase-to-unsigned.signed.example. 300 IN CNAME unsigned.example.",
		"chase-to-signed.signed.example. 300 IN CNAME signed.example.")
	tests := []struct {
		name  string
		trust []netip.Prefix
		qname string
		want  bool
	}{
		{"signed, loopback trusted by default", nil, "signed.example", true},
		{"unsigned", nil, "unsigned.example", false},
		{"NXDOMAIN in signed zone", nil, "nx.signed.example", true},
		{"signed, nobody trusted", []netip.Prefix{}, "signed.example", false},
		{"signed, other network trusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "signed.example", false},
		{"signed, server trusted explicitly", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "signed.example", true},
		{"CNAME signed to signed", nil, "to-signed.signed.example", true},
		{"CNAME signed to unsigned", nil, "to-unsigned.signed.example", false},
		{"chased CNAME signed to signed", nil, "chase-to-signed.signed.example", true},
		{"chased CNAME signed to unsigned", nil, "chase-to-unsigned.signed.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, resolver.Options{TrustAD: tt.trust}, s.Addr())
			if got := query(t, r, tt.qname, resolver.TypeA); got.Secure != tt.want {
				t.Errorf("Secure = %v, want %v", got.Secure, tt.want)
			}
		})
	}
}

func TestCNAME(t *testing.T) {
	z, s := serve(t,
		"www.example.com. 600 IN CNAME web.example.net.",
		"web.example.net. 120 IN CNAME host.example.org.",
		"host.example.org. 300 IN A 192.0.2.1",
		"dangling.example.com. 300 IN CNAME nx.example.org.",
		"loop1.example.com. 300 IN CNAME loop2.example.com.",
		"loop2.example.com. 300 IN CNAME loop1.example.com.",
		"chase1.example.com. 300 IN CNAME chase2.example.net.",
		"chase2.example.net. 100 IN CNAME chase3.example.org.",
		"chase3.example.org. 300 IN A 192.0.2.3",
		"chaseloop1.example.com. 300 IN CNAME chaseloop2.example.net.",
		"chaseloop2.example.net. 300 IN CNAME chaseloop1.example.com.",
		"chasefail.example.com. 300 IN CNAME sf.example.net.",
		"sf.example.net. 300 IN A 192.0.2.9",
	)
	for i := range 20 {
		z.Add(fmt.Sprintf("chain%d.example.com. 300 IN CNAME chain%d.example.com.", i, i+1))
	}
	// Names starting with "chase" or "chain" get replies with the first
	// CNAME only, as from an authoritative server that does not follow the
	// chain out of its zone; sf.example.net fails.
	s.Mangle(func(_, m *dns.Msg) {
		n := m.Question[0].Name
		if n == "sf.example.net." {
			m.Rcode, m.Answer = dns.RcodeServerFailure, nil
		}
		if strings.HasPrefix(n, "chase") || strings.HasPrefix(n, "chain") {
			if len(m.Answer) > 1 {
				m.Answer = m.Answer[:1]
			}
			if len(m.Answer) == 1 && m.Answer[0].Header().Rrtype == dns.TypeCNAME {
				m.Ns = nil
			}
		}
	})
	tests := []struct {
		name      string
		qname     string
		wantCNAME []string
		wantIPs   []string
		wantRcode resolver.Rcode
		wantTTL   time.Duration
		wantSent  int
		wantErr   error
		errText   string
	}{
		{name: "chain in one reply", qname: "www.example.com", wantCNAME: []string{"web.example.net", "host.example.org"},
			wantIPs: []string{"192.0.2.1"}, wantTTL: 120 * time.Second, wantSent: 1},
		{name: "chain to NXDOMAIN", qname: "dangling.example.com", wantCNAME: []string{"nx.example.org"},
			wantRcode: resolver.RcodeNXDomain, wantTTL: dnstest.NegativeTTL, wantSent: 1},
		{name: "loop in one reply", qname: "loop1.example.com", wantErr: resolver.ErrServFail, errText: "CNAME loop", wantSent: 1},
		{name: "chased chain", qname: "chase1.example.com", wantCNAME: []string{"chase2.example.net", "chase3.example.org"},
			wantIPs: []string{"192.0.2.3"}, wantTTL: 100 * time.Second, wantSent: 3},
		{name: "chased loop", qname: "chaseloop1.example.com", wantErr: resolver.ErrServFail, errText: "CNAME loop", wantSent: 2},
		{name: "chased chain too long", qname: "chain0.example.com", wantErr: resolver.ErrServFail, errText: "chain too long", wantSent: 8},
		{name: "chased link fails", qname: "chasefail.example.com", wantErr: resolver.ErrServFail, errText: "sf.example.net", wantSent: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, resolver.Options{CacheSize: -1}, s.Addr())
			before := s.UDPQueries()
			got, err := r.Query(context.Background(), tt.qname, resolver.TypeA)
			if sent := s.UDPQueries() - before; sent != tt.wantSent {
				t.Errorf("sent %d queries, want %d", sent, tt.wantSent)
			}
			if tt.wantErr != nil {
				checkKind(t, err, tt.wantErr)
				if err != nil && !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.CNAME, tt.wantCNAME) {
				t.Errorf("CNAME = %q, want %q", got.CNAME, tt.wantCNAME)
			}
			var ips []string
			for _, rec := range got.Records {
				ips = append(ips, rec.IP.String())
				if want := tt.wantCNAME[len(tt.wantCNAME)-1]; rec.Name != want {
					t.Errorf("record owner %q, want %q", rec.Name, want)
				}
			}
			if !reflect.DeepEqual(ips, tt.wantIPs) {
				t.Errorf("IPs = %q, want %q", ips, tt.wantIPs)
			}
			if got.Rcode != tt.wantRcode || got.TTL != tt.wantTTL || got.Name != tt.qname {
				t.Errorf("rcode %v TTL %v name %q, want %v %v %q", got.Rcode, got.TTL, got.Name, tt.wantRcode, tt.wantTTL, tt.qname)
			}
		})
	}
}

func TestCNAMEChaseUsesCache(t *testing.T) {
	_, s := serve(t,
		"chase1.example.com. 300 IN CNAME target.example.net.",
		"target.example.net. 300 IN A 192.0.2.3",
	)
	s.Mangle(func(_, m *dns.Msg) {
		if m.Question[0].Name == "chase1.example.com." {
			m.Answer = m.Answer[:1]
		}
	})
	clk := newClock()
	r := newResolver(t, resolver.Options{Now: clk.Now}, s.Addr())
	query(t, r, "target.example.net", resolver.TypeA)
	clk.Advance(200 * time.Second)
	got := query(t, r, "chase1.example.com", resolver.TypeA)
	if len(got.Records) != 1 || got.TTL != 100*time.Second {
		t.Errorf("got %v TTL %v, want one record, TTL 100s", got.Records, got.TTL)
	}
	if s.UDPQueries() != 2 {
		t.Errorf("sent %d queries, want 2", s.UDPQueries())
	}
}

func TestCache(t *testing.T) {
	type step struct {
		advance  time.Duration
		qname    string
		typ      resolver.Type
		wantSent int // queries the server received so far
		wantTTL  time.Duration
		wantErr  bool
	}
	A, TXT := resolver.TypeA, resolver.TypeTXT
	tests := []struct {
		name    string
		opts    resolver.Options
		records []string
		setup   func(*dnstest.Zone, *dnstest.Server)
		steps   []step
	}{
		{
			name:    "hit until expiry",
			records: []string{"host.example.com. 300 IN A 192.0.2.1"},
			steps: []step{
				{qname: "host.example.com", typ: A, wantSent: 1, wantTTL: 300 * time.Second},
				{advance: 100 * time.Second, qname: "host.example.com", typ: A, wantSent: 1, wantTTL: 200 * time.Second},
				{qname: "HOST.Example.COM.", typ: A, wantSent: 1, wantTTL: 200 * time.Second},
				{qname: "host.example.com", typ: TXT, wantSent: 2, wantTTL: dnstest.NegativeTTL},
				{advance: 199 * time.Second, qname: "host.example.com", typ: A, wantSent: 2, wantTTL: time.Second},
				{advance: time.Second, qname: "host.example.com", typ: A, wantSent: 3, wantTTL: 300 * time.Second},
			},
		},
		{
			name:    "TTL is the minimum of the chain",
			records: []string{"www.example.com. 30 IN CNAME host.example.com.", "host.example.com. 300 IN A 192.0.2.1"},
			steps: []step{
				{qname: "www.example.com", typ: A, wantSent: 1, wantTTL: 30 * time.Second},
				{advance: 29 * time.Second, qname: "www.example.com", typ: A, wantSent: 1, wantTTL: time.Second},
				{advance: time.Second, qname: "www.example.com", typ: A, wantSent: 2, wantTTL: 30 * time.Second},
			},
		},
		{
			name:    "MaxTTL caps",
			opts:    resolver.Options{MaxTTL: time.Hour},
			records: []string{"host.example.com. 604800 IN A 192.0.2.1"},
			steps: []step{
				{qname: "host.example.com", typ: A, wantSent: 1, wantTTL: time.Hour},
				{advance: time.Hour, qname: "host.example.com", typ: A, wantSent: 2, wantTTL: time.Hour},
			},
		},
		{
			name: "negative answers cached by SOA",
			steps: []step{
				{qname: "nx.example.com", typ: A, wantSent: 1, wantTTL: dnstest.NegativeTTL},
				{advance: dnstest.NegativeTTL - time.Second, qname: "nx.example.com", typ: A, wantSent: 1, wantTTL: time.Second},
				{advance: time.Second, qname: "nx.example.com", typ: A, wantSent: 2, wantTTL: dnstest.NegativeTTL},
			},
		},
		{
			name: "negative TTL is min(SOA TTL, MINIMUM)",
			setup: func(_ *dnstest.Zone, s *dnstest.Server) {
				s.Mangle(func(_, m *dns.Msg) { m.Ns[0].Header().Ttl = 20 })
			},
			steps: []step{
				{qname: "nx.example.com", typ: A, wantSent: 1, wantTTL: 20 * time.Second},
				{advance: 20 * time.Second, qname: "nx.example.com", typ: A, wantSent: 2, wantTTL: 20 * time.Second},
			},
		},
		{
			name:    "negative answers without SOA not cached",
			records: []string{"host.example.com. 300 IN A 192.0.2.1"},
			setup: func(_ *dnstest.Zone, s *dnstest.Server) {
				s.Mangle(func(_, m *dns.Msg) { m.Ns = nil })
			},
			steps: []step{
				{qname: "nx.example.com", typ: A, wantSent: 1},
				{qname: "nx.example.com", typ: A, wantSent: 2},
				{qname: "host.example.com", typ: TXT, wantSent: 3},
				{qname: "host.example.com", typ: TXT, wantSent: 4},
			},
		},
		{
			name:    "TTL 0 not cached",
			records: []string{"host.example.com. 300 IN A 192.0.2.1"},
			setup: func(_ *dnstest.Zone, s *dnstest.Server) {
				s.Mangle(func(_, m *dns.Msg) { m.Answer[0].Header().Ttl = 0 })
			},
			steps: []step{
				{qname: "host.example.com", typ: A, wantSent: 1},
				{qname: "host.example.com", typ: A, wantSent: 2},
			},
		},
		{
			name: "errors not cached",
			opts: resolver.Options{Timeout: shortTimeout},
			setup: func(z *dnstest.Zone, _ *dnstest.Server) {
				z.SetFault("sf.example.com", 0, dnstest.ServFail)
				z.SetFault("to.example.com", 0, dnstest.Timeout)
			},
			steps: []step{
				{qname: "sf.example.com", typ: A, wantSent: 1, wantErr: true},
				{qname: "sf.example.com", typ: A, wantSent: 2, wantErr: true},
				{qname: "to.example.com", typ: A, wantSent: 3, wantErr: true},
				{qname: "to.example.com", typ: A, wantSent: 4, wantErr: true},
			},
		},
		{
			name:    "cache disabled",
			opts:    resolver.Options{CacheSize: -1},
			records: []string{"host.example.com. 300 IN A 192.0.2.1"},
			steps: []step{
				{qname: "host.example.com", typ: A, wantSent: 1, wantTTL: 300 * time.Second},
				{qname: "host.example.com", typ: A, wantSent: 2, wantTTL: 300 * time.Second},
			},
		},
		{
			name:    "LRU eviction",
			opts:    resolver.Options{CacheSize: 1},
			records: []string{"a.example.com. 300 IN A 192.0.2.1", "b.example.com. 300 IN A 192.0.2.2"},
			steps: []step{
				{qname: "a.example.com", typ: A, wantSent: 1, wantTTL: 300 * time.Second},
				{qname: "b.example.com", typ: A, wantSent: 2, wantTTL: 300 * time.Second},
				{qname: "b.example.com", typ: A, wantSent: 2, wantTTL: 300 * time.Second},
				{qname: "a.example.com", typ: A, wantSent: 3, wantTTL: 300 * time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, s := serve(t, tt.records...)
			if tt.setup != nil {
				tt.setup(z, s)
			}
			clk := newClock()
			tt.opts.Now = clk.Now
			r := newResolver(t, tt.opts, s.Addr())
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				got, err := r.Query(context.Background(), st.qname, st.typ)
				if (err != nil) != st.wantErr {
					t.Fatalf("step %d: err = %v, want error %v", i, err, st.wantErr)
				}
				if sent := s.UDPQueries(); sent != st.wantSent {
					t.Errorf("step %d: server got %d queries, want %d", i, sent, st.wantSent)
				}
				if err == nil && got.TTL != st.wantTTL {
					t.Errorf("step %d: TTL = %v, want %v", i, got.TTL, st.wantTTL)
				}
			}
		})
	}
}

func TestCacheHitCopiesAnswer(t *testing.T) {
	_, s := serve(t, "host.example.com. 300 IN A 192.0.2.1")
	clk := newClock()
	r := newResolver(t, resolver.Options{Now: clk.Now}, s.Addr())
	first := query(t, r, "host.example.com", resolver.TypeA)
	clk.Advance(time.Minute)
	second := query(t, r, "host.example.com", resolver.TypeA)
	third := query(t, r, "host.example.com", resolver.TypeA)
	if first == second || second == third {
		t.Error("cache hits return the same *Answer")
	}
	if first.TTL != 5*time.Minute || second.TTL != 4*time.Minute {
		t.Errorf("TTLs %v, %v, want 5m, 4m", first.TTL, second.TTL)
	}
	if &second.Records[0] != &third.Records[0] {
		t.Error("cache hits copy the records")
	}
	want := resolver.Stats{Queries: 1, CacheHits: 2, CacheMisses: 1}
	if got := r.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestSingleflight(t *testing.T) {
	_, s := serve(t, "host.example.com. 300 IN A 192.0.2.1")
	release := make(chan struct{})
	s.Mangle(func(_, _ *dns.Msg) { <-release })
	r := newResolver(t, resolver.Options{CacheSize: -1, Timeout: 5 * time.Second}, s.Addr())

	const n = 50
	var wg sync.WaitGroup
	answers := make([]*resolver.Answer, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = r.Query(context.Background(), "host.example.com", resolver.TypeA)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Shared < n-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || len(answers[i].Records) != 1 {
			t.Fatalf("goroutine %d: %v, %v", i, answers[i], errs[i])
		}
	}
	if got := s.UDPQueries(); got != 1 {
		t.Errorf("server got %d queries, want 1", got)
	}
	want := resolver.Stats{Queries: 1, CacheMisses: n, Shared: n - 1}
	if got := r.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestSingleflightWaiterLeaves(t *testing.T) {
	_, s := serve(t, "host.example.com. 300 IN A 192.0.2.1")
	release := make(chan struct{})
	s.Mangle(func(_, _ *dns.Msg) { <-release })
	r := newResolver(t, resolver.Options{Timeout: 5 * time.Second}, s.Addr())

	// The first caller gives up; the second, sharing its query, still
	// gets the answer.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := r.Query(ctx, "host.example.com", resolver.TypeA)
		errc <- err
	}()
	for s.UDPQueries() == 0 {
		time.Sleep(time.Millisecond)
	}
	ansc := make(chan *resolver.Answer)
	go func() {
		a, _ := r.Query(context.Background(), "host.example.com", resolver.TypeA)
		ansc <- a
	}()
	for r.Stats().Shared == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: err = %v", err)
	}
	close(release)
	if a := <-ansc; a == nil || len(a.Records) != 1 {
		t.Errorf("second caller: answer = %v", a)
	}
	if s.UDPQueries() != 1 {
		t.Errorf("server got %d queries, want 1", s.UDPQueries())
	}
}

func TestBadNames(t *testing.T) {
	r := newResolver(t, resolver.Options{}, deadAddr(t))
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name  string
		qname string
		ok    bool
	}{
		{"empty", "", false},
		{"empty label", "a..example.com", false},
		{"leading dot", ".example.com", false},
		{"two trailing dots", "example.com..", false},
		{"label of 64", strings.Repeat("a", 64) + ".example.com", false},
		{"name of 254", strings.Join([]string{long63, long63, long63, strings.Repeat("a", 62)}, "."), false},
		{"space", "a b.example.com", true},
		{"backslash", `a\.b.example.com`, true},
		{"control", "a\x00b.example.com", true},
		{"label of 63", long63 + ".example.com", true},
		{"name of 253", strings.Join([]string{long63, long63, long63, strings.Repeat("a", 61)}, "."), true},
		{"name of 253 with dot", strings.Join([]string{long63, long63, long63, strings.Repeat("a", 61)}, ".") + ".", true},
		{"root", ".", true},
		{"underscore", "_dmarc.example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // valid names fail fast with ErrTimeout; invalid ones before
			_, err := r.Query(ctx, tt.qname, resolver.TypeA)
			if got := errors.Is(err, resolver.ErrBadName); got == tt.ok {
				t.Fatalf("errors.Is(%v, ErrBadName) = %v, want %v", err, got, !tt.ok)
			}
			if !tt.ok && errors.Is(err, resolver.ErrTemporary) {
				t.Errorf("%v is temporary", err)
			}
		})
	}
}

func TestContext(t *testing.T) {
	z, s := serve(t)
	z.SetFault("slow.example.com", 0, dnstest.Timeout)
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantCtx error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"canceled before", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, resolver.Options{Timeout: 10 * time.Second, Attempts: 3}, s.Addr())
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := r.Query(ctx, "slow.example.com", resolver.TypeA)
			if d := time.Since(start); d > time.Second {
				t.Errorf("Query took %v", d)
			}
			checkKind(t, err, resolver.ErrTimeout)
			if !errors.Is(err, tt.wantCtx) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantCtx)
			}
		})
	}
}

func TestQuerierFakeAndResolverAgree(t *testing.T) {
	texts := []string{
		"www.example.com. 300 IN CNAME host.example.com.",
		"host.example.com. 300 IN A 192.0.2.1",
		"example.com. 300 IN MX 10 host.example.com.",
	}
	z, s := serve(t, texts...)
	z.SetSecure("", true)
	r := newResolver(t, resolver.Options{}, s.Addr())
	for _, q := range []struct {
		name string
		typ  resolver.Type
	}{
		{"www.example.com", resolver.TypeA}, {"example.com", resolver.TypeMX},
		{"nx.example.com", resolver.TypeA}, {"host.example.com", resolver.TypeTXT},
	} {
		t.Run(q.name+"/"+q.typ.String(), func(t *testing.T) {
			fake := query(t, z, q.name, q.typ)
			wire := query(t, r, q.name, q.typ)
			if !reflect.DeepEqual(fake, wire) {
				t.Errorf("fake  %+v\nwire  %+v", fake, wire)
			}
		})
	}
}
