package dnstest_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func exchange(t *testing.T, s *dnstest.Server, proto, name string, qtype uint16, edit func(*dns.Msg)) (*dns.Msg, error) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	if edit != nil {
		edit(q)
	}
	c := &dns.Client{Net: proto, Timeout: 100 * time.Millisecond, UDPSize: 65535}
	m, _, err := c.Exchange(q, s.Addr())
	return m, err
}

func TestServer(t *testing.T) {
	var big []string
	for i := range 10 {
		big = append(big, `big.example.com. 300 IN TXT "`+strings.Repeat("x", 190)+string(rune('a'+i))+`"`)
	}
	z := dnstest.NewZone().Add(append(big,
		"www.example.com. 300 IN CNAME host.example.net.",
		"host.example.net. 300 IN A 192.0.2.1",
		"signed.example.org. 300 IN A 192.0.2.2",
		"tc.example.com. 300 IN A 192.0.2.3",
	)...)
	z.SetSecure("example.org", true)
	z.SetFault("servfail.example.com", 0, dnstest.ServFail)
	z.SetFault("refused.example.com", 0, dnstest.Refused)
	z.SetFault("timeout.example.com", 0, dnstest.Timeout)
	z.SetFault("tc.example.com", resolver.TypeA, dnstest.Truncated)
	s := dnstest.NewServer(t, z)

	noEDNS := func(m *dns.Msg) { m.Extra = nil }
	tests := []struct {
		name      string
		proto     string
		qname     string
		qtype     uint16
		edit      func(*dns.Msg)
		wantRcode int
		wantAD    bool
		wantTC    bool
		wantAns   []string // types of the answer section, in order
		wantSOA   string   // owner of the SOA in the authority section
		wantErr   bool
	}{
		{name: "CNAME first", proto: "udp", qname: "www.example.com.", qtype: dns.TypeA, wantAns: []string{"CNAME", "A"}},
		{name: "AD with DO", proto: "udp", qname: "signed.example.org.", qtype: dns.TypeA, wantAD: true, wantAns: []string{"A"}},
		{name: "AD with AD", proto: "udp", qname: "signed.example.org.", qtype: dns.TypeA,
			edit: func(m *dns.Msg) { m.Extra = nil; m.AuthenticatedData = true }, wantAD: true, wantAns: []string{"A"}},
		{name: "no AD without DO", proto: "udp", qname: "signed.example.org.", qtype: dns.TypeA, edit: noEDNS, wantAns: []string{"A"}},
		{name: "no AD when insecure", proto: "udp", qname: "host.example.net.", qtype: dns.TypeA, wantAns: []string{"A"}},
		{name: "NXDOMAIN", proto: "udp", qname: "nx.sub.example.com.", qtype: dns.TypeA, wantRcode: dns.RcodeNameError, wantSOA: "example.com."},
		{name: "NODATA", proto: "udp", qname: "host.example.net.", qtype: dns.TypeMX, wantSOA: "example.net."},
		{name: "NXDOMAIN at end of chain", proto: "tcp", qname: "www.example.com.", qtype: dns.TypeTXT,
			wantAns: []string{"CNAME"}, wantSOA: "example.net."},
		{name: "SERVFAIL", proto: "udp", qname: "servfail.example.com.", qtype: dns.TypeA, wantRcode: dns.RcodeServerFailure},
		{name: "REFUSED", proto: "tcp", qname: "refused.example.com.", qtype: dns.TypeA, wantRcode: dns.RcodeRefused},
		{name: "timeout UDP", proto: "udp", qname: "timeout.example.com.", qtype: dns.TypeA, wantErr: true},
		{name: "timeout TCP", proto: "tcp", qname: "timeout.example.com.", qtype: dns.TypeA, wantErr: true},
		{name: "Truncated over UDP", proto: "udp", qname: "tc.example.com.", qtype: dns.TypeA, wantTC: true},
		{name: "Truncated over TCP", proto: "tcp", qname: "tc.example.com.", qtype: dns.TypeA, wantAns: []string{"A"}},
		{name: "large answer over UDP", proto: "udp", qname: "big.example.com.", qtype: dns.TypeTXT, wantTC: true,
			wantAns: []string{"TXT", "TXT", "TXT", "TXT", "TXT"}},
		{name: "large answer over UDP without EDNS", proto: "udp", qname: "big.example.com.", qtype: dns.TypeTXT, edit: noEDNS,
			wantTC: true, wantAns: []string{"TXT", "TXT"}},
		{name: "large answer, large buffer", proto: "udp", qname: "big.example.com.", qtype: dns.TypeTXT,
			edit: func(m *dns.Msg) { m.Extra = nil; m.SetEdns0(4096, true) }, wantAns: strings.Fields(strings.Repeat("TXT ", 10))},
		{name: "large answer over TCP", proto: "tcp", qname: "big.example.com.", qtype: dns.TypeTXT, wantAns: strings.Fields(strings.Repeat("TXT ", 10))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			udp, tcp := s.UDPQueries(), s.TCPQueries()
			m, err := exchange(t, s, tt.proto, tt.qname, tt.qtype, tt.edit)
			wantUDP, wantTCP := 1, 0
			if tt.proto == "tcp" {
				wantUDP, wantTCP = 0, 1
			}
			if s.UDPQueries()-udp != wantUDP || s.TCPQueries()-tcp != wantTCP {
				t.Errorf("counters moved by %d UDP and %d TCP", s.UDPQueries()-udp, s.TCPQueries()-tcp)
			}
			if tt.wantErr {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("err = %v, want a timeout", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ans []string
			for _, rr := range m.Answer {
				ans = append(ans, dns.TypeToString[rr.Header().Rrtype])
			}
			if m.Rcode != tt.wantRcode || m.AuthenticatedData != tt.wantAD || m.Truncated != tt.wantTC || strings.Join(ans, " ") != strings.Join(tt.wantAns, " ") {
				t.Errorf("got rcode %s AD %v TC %v answer %v; want %s %v %v %v", dns.RcodeToString[m.Rcode], m.AuthenticatedData, m.Truncated, ans,
					dns.RcodeToString[tt.wantRcode], tt.wantAD, tt.wantTC, tt.wantAns)
			}
			var soa *dns.SOA
			for _, rr := range m.Ns {
				if s, ok := rr.(*dns.SOA); ok {
					soa = s
				}
			}
			switch {
			case tt.wantSOA == "" && soa != nil:
				t.Errorf("unexpected SOA %v", soa)
			case tt.wantSOA != "" && soa == nil:
				t.Errorf("no SOA in %v", m.Ns)
			case soa != nil:
				neg := uint32(dnstest.NegativeTTL / time.Second)
				if soa.Hdr.Name != tt.wantSOA || soa.Hdr.Ttl != neg || soa.Minttl != neg {
					t.Errorf("SOA %v, want owner %s TTL and minimum %d", soa, tt.wantSOA, neg)
				}
			}
		})
	}
}

func TestServerLogsEachQueryOnce(t *testing.T) {
	z := dnstest.NewZone().Add("host.example.com. 300 IN A 192.0.2.1")
	s := dnstest.NewServer(t, z)
	for _, proto := range []string{"udp", "tcp"} {
		if _, err := exchange(t, s, proto, "HOST.example.com.", dns.TypeA, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []dnstest.QueryLog{{Name: "host.example.com", Type: resolver.TypeA}, {Name: "host.example.com", Type: resolver.TypeA}}
	if got := z.Queries(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Queries() = %v, want %v", got, want)
	}
}

func TestServerMangle(t *testing.T) {
	z := dnstest.NewZone().Add("host.example.com. 300 IN A 192.0.2.1")
	s := dnstest.NewServer(t, z)
	s.Mangle(func(req, resp *dns.Msg) {
		if req.Question[0].Name != resp.Question[0].Name {
			t.Error("resp does not answer req")
		}
		resp.Question[0].Name = "evil.example."
	})
	m, err := exchange(t, s, "tcp", "host.example.com.", dns.TypeA, nil)
	if err != nil || m.Question[0].Name != "evil.example." {
		t.Errorf("Mangle: got %v, %v", m, err)
	}
	s.Mangle(nil)
	s.MangleWire(func(wire []byte) []byte { return append(wire[:2:2], 0xff, 0xff, 0xff) })
	_, err = exchange(t, s, "udp", "host.example.com.", dns.TypeA, nil)
	if err == nil {
		t.Error("MangleWire: garbage unpacked")
	}
	s.MangleWire(nil)
	if m, err = exchange(t, s, "udp", "host.example.com.", dns.TypeA, nil); err != nil || len(m.Answer) != 1 {
		t.Errorf("hooks removed: got %v, %v", m, err)
	}
}

func TestNewServerPorts(t *testing.T) {
	z := dnstest.NewZone()
	seen := map[string]bool{}
	for range 5 {
		s := dnstest.NewServer(t, z)
		if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || seen[s.Addr()] {
			t.Errorf("Addr() = %q", s.Addr())
		}
		seen[s.Addr()] = true
	}
}
