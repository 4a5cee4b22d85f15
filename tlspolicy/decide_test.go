package tlspolicy

import (
	"context"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

var (
	sha256Hex = strings.Repeat("ab", 32)
	sha512Hex = strings.Repeat("cd", 64)
)

// testZone holds one next hop per class of issue 7.
func testZone() *dnstest.Zone {
	z := dnstest.NewZone().Add(
		// secure MX, one DANE-EE host
		"dane.example.com. 300 IN MX 10 mx1.dane.example.com.",
		"mx1.dane.example.com. 300 IN A 192.0.2.1",
		"mx1.dane.example.com. 300 IN AAAA 2001:db8::1",
		"_25._tcp.mx1.dane.example.com. 120 IN TLSA 3 1 1 "+sha256Hex,
		"_587._tcp.mx1.dane.example.com. 300 IN TLSA 2 1 2 "+sha512Hex,
		// two DANE hosts, one DANE-TA only
		"two.example.com. 300 IN MX 20 mx2.example.com.",
		"two.example.com. 300 IN MX 10 mx1.dane.example.com.",
		"mx2.example.com. 300 IN A 192.0.2.2",
		"_25._tcp.mx2.example.com. 300 IN TLSA 2 0 1 "+sha256Hex,
		"ta.example.com. 300 IN MX 10 mx2.example.com.",
		// CNAME'd MX host: TLSA at the expanded name
		"cname.example.com. 300 IN MX 10 alias.example.com.",
		"alias.example.com. 300 IN CNAME mx1.dane.example.com.",
		// CNAME'd MX host: no TLSA at the expanded name, TLSA at the original
		"cname2.example.com. 300 IN MX 10 alias2.example.com.",
		"alias2.example.com. 300 IN CNAME plain.example.com.",
		"plain.example.com. 300 IN A 192.0.2.3",
		"_25._tcp.alias2.example.com. 300 IN TLSA 3 0 1 "+sha256Hex,
		// unusable-only TLSA
		"unusable.example.com. 300 IN MX 10 mxu.example.com.",
		"mxu.example.com. 300 IN A 192.0.2.4",
		"_25._tcp.mxu.example.com. 300 IN TLSA 1 1 1 "+sha256Hex,
		"pkixta.example.com. 300 IN MX 10 mxta.example.com.",
		"mxta.example.com. 300 IN A 192.0.2.5",
		"_25._tcp.mxta.example.com. 300 IN TLSA 0 1 1 "+sha256Hex,
		"badlen.example.com. 300 IN MX 10 mxbad.example.com.",
		"mxbad.example.com. 300 IN A 192.0.2.6",
		"_25._tcp.mxbad.example.com. 300 IN TLSA 3 1 1 abcd",
		"_25._tcp.mxbad.example.com. 300 IN TLSA 3 2 1 "+sha256Hex,
		// proven absence of TLSA
		"notlsa.example.com. 300 IN MX 10 plain.example.com.",
		// insecure MX to a secure DANE host, and an all-insecure domain
		"smart.insecure.org. 300 IN MX 10 mx1.dane.example.com.",
		"insecure.org. 300 IN MX 10 mx.insecure.org.",
		"mx.insecure.org. 300 IN A 198.51.100.1",
		"_25._tcp.mx.insecure.org. 300 IN TLSA 3 1 1 "+sha256Hex,
		// mixed secure/insecure MX set
		"mixed.example.com. 300 IN MX 10 mx1.dane.example.com.",
		"mixed.example.com. 300 IN MX 20 mx.insecure.org.",
		// MX order is never changed by security
		"order.example.com. 300 IN MX 20 mx1.dane.example.com.",
		"order.example.com. 300 IN MX 10 mx.insecure.org.",
		// lookup failures
		"mxfail.example.com. 300 IN MX 10 mx1.dane.example.com.",
		"bogustlsa.example.com. 300 IN MX 10 mxbogus.example.com.",
		"mxbogus.example.com. 300 IN A 192.0.2.7",
		"timeouttlsa.example.com. 300 IN MX 10 mxslow.example.com.",
		"mxslow.example.com. 300 IN A 192.0.2.8",
		"onefails.example.com. 300 IN MX 10 broken.example.com.",
		"onefails.example.com. 300 IN MX 20 mx1.dane.example.com.",
		"onefails2.example.com. 300 IN MX 10 broken.example.com.",
		"onefails2.example.com. 300 IN MX 20 plain.example.com.",
		"allfail.example.com. 300 IN MX 10 broken.example.com.",
		"broken.example.com. 300 IN A 192.0.2.9",
		"v4fails.example.com. 300 IN MX 10 halfbroken.example.com.",
		"halfbroken.example.com. 300 IN AAAA 2001:db8::9",
		"_25._tcp.halfbroken.example.com. 300 IN TLSA 3 1 1 "+sha256Hex,
		// implicit MX, null MX, hosts without addresses
		"implicit.example.com. 300 IN A 192.0.2.10",
		"_25._tcp.implicit.example.com. 300 IN TLSA 3 1 1 "+sha256Hex,
		"nullmx.example.com. 300 IN MX 0 .",
		"noaddr.example.com. 300 IN MX 10 nowhere.example.com.",
	)
	z.SetSecure("example.com", true)
	z.SetSecure("insecure.org", false)
	z.SetFault("mxfail.example.com", resolver.TypeMX, dnstest.ServFail)
	z.SetFault("_25._tcp.mxbogus.example.com", 0, dnstest.ServFail)
	z.SetFault("_25._tcp.mxslow.example.com", 0, dnstest.Timeout)
	z.SetFault("broken.example.com", 0, dnstest.ServFail)
	z.SetFault("halfbroken.example.com", resolver.TypeA, dnstest.Timeout)
	return z
}

type hostWant struct {
	name   string
	status HostStatus
}

func TestDecide(t *testing.T) {
	pkix := DefaultRules()
	pkix.PKIXAsDANE = true
	require := DefaultRules()
	require.RequireDomains = MustList("notlsa.example.com : mxfail.example.com : smart.insecure.org", false)
	require.DisableDomains = MustList("*.example.com", false)
	disable := DefaultRules()
	disable.DisableDomains = MustList("dane.example.com", false)
	hostsReq := DefaultRules()
	hostsReq.DANEDomains = nil
	hostsReq.RequireHosts = MustList("plain.example.com", true)
	hostsTry := DefaultRules()
	hostsTry.DANEDomains = nil
	hostsTry.TryHosts = MustList("192.0.2.0/24", true)
	off := DefaultRules()
	off.DANEDomains = MustList("!*.example.com : *", false)

	tests := []struct {
		name    string
		rules   *Rules
		nexthop string
		level   Level
		hosts   []hostWant
		usage   uint8
		ocsp    OCSP
		reason  string // substring
	}{
		{name: "secure MX + usable TLSA", nexthop: "dane.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"mx1.dane.example.com", HostDANE}}, usage: UsageBitDANEEE, ocsp: OCSPNone},
		{name: "upper case and trailing dot", nexthop: "DANE.Example.COM.", level: LevelDANEOnly},
		{name: "two DANE hosts, EE and TA", nexthop: "two.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"mx1.dane.example.com", HostDANE}, {"mx2.example.com", HostDANE}}, usage: UsageBitDANEEE | UsageBitDANETA, ocsp: OCSPNone},
		{name: "DANE-TA only requests OCSP", nexthop: "ta.example.com", level: LevelDANEOnly, usage: UsageBitDANETA, ocsp: OCSPRequest},
		{name: "insecure MX to secure DANE host", nexthop: "smart.insecure.org", level: LevelDANE,
			hosts: []hostWant{{"mx1.dane.example.com", HostDANE}}, reason: "§2.2.1"},
		{name: "insecure everything", nexthop: "insecure.org", level: LevelNone, ocsp: OCSPRequest,
			hosts: []hostWant{{"mx.insecure.org", HostInsecure}}},
		{name: "CNAME'd MX host, TLSA at expanded name", nexthop: "cname.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"alias.example.com", HostDANE}}},
		{name: "CNAME'd MX host, TLSA at original name", nexthop: "cname2.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"alias2.example.com", HostDANE}}, reason: "mandatory"},
		{name: "unusable-only TLSA", nexthop: "unusable.example.com", level: LevelEncrypt,
			hosts: []hostWant{{"mxu.example.com", HostUnusable}}, ocsp: OCSPRequest},
		{name: "PKIX-EE as DANE-EE", rules: pkix, nexthop: "unusable.example.com", level: LevelDANEOnly, usage: UsageBitDANEEE},
		{name: "PKIX-TA digest stays unusable", rules: pkix, nexthop: "pkixta.example.com", level: LevelEncrypt},
		{name: "malformed TLSA data", nexthop: "badlen.example.com", level: LevelEncrypt},
		{name: "proven absence of TLSA", nexthop: "notlsa.example.com", level: LevelNone,
			hosts: []hostWant{{"plain.example.com", HostNoTLSA}}},
		{name: "mixed secure/insecure MX set", nexthop: "mixed.example.com", level: LevelDANE,
			hosts: []hostWant{{"mx1.dane.example.com", HostDANE}, {"mx.insecure.org", HostInsecure}}},
		{name: "MX order kept", nexthop: "order.example.com", level: LevelDANE,
			hosts: []hostWant{{"mx.insecure.org", HostInsecure}, {"mx1.dane.example.com", HostDANE}}},
		{name: "SERVFAIL on MX", nexthop: "mxfail.example.com", level: LevelTemp, reason: "SERVFAIL"},
		{name: "bogus TLSA", nexthop: "bogustlsa.example.com", level: LevelTemp,
			hosts: []hostWant{{"mxbogus.example.com", HostTemp}}},
		{name: "timeout on TLSA", nexthop: "timeouttlsa.example.com", level: LevelTemp, reason: "timeout"},
		{name: "one failing host does not sink a DANE host", nexthop: "onefails.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"broken.example.com", HostTemp}, {"mx1.dane.example.com", HostDANE}}, reason: "broken.example.com"},
		{name: "one failing host keeps DANE per host", nexthop: "onefails2.example.com", level: LevelDANE,
			hosts: []hostWant{{"broken.example.com", HostTemp}, {"plain.example.com", HostNoTLSA}}},
		{name: "every host failing", nexthop: "allfail.example.com", level: LevelTemp},
		{name: "A fails, AAAA secure", nexthop: "v4fails.example.com", level: LevelDANEOnly},
		{name: "implicit MX", nexthop: "implicit.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"implicit.example.com", HostDANE}}},
		{name: "null MX", nexthop: "nullmx.example.com", level: LevelNone, reason: "RFC 7505"},
		{name: "NXDOMAIN", nexthop: "nonexistent.example.com", level: LevelNone, reason: "NXDOMAIN"},
		{name: "MX host without addresses", nexthop: "noaddr.example.com", level: LevelNone,
			hosts: []hostWant{{"nowhere.example.com", HostNoAddress}}},
		{name: "[host]", nexthop: "[mx1.dane.example.com]", level: LevelDANEOnly,
			hosts: []hostWant{{"mx1.dane.example.com", HostDANE}}},
		{name: "[host]:port with TLSA", nexthop: "[mx1.dane.example.com]:587", level: LevelDANEOnly, usage: UsageBitDANETA, ocsp: OCSPRequest},
		{name: "[host]:port without TLSA", nexthop: "[mx1.dane.example.com]:2525", level: LevelNone,
			hosts: []hostWant{{"mx1.dane.example.com", HostNoTLSA}}},
		{name: "domain:port", nexthop: "dane.example.com:587", level: LevelDANEOnly, usage: UsageBitDANETA},
		{name: "address literal", nexthop: "[192.0.2.1]", level: LevelNone},
		{name: "required, no TLSA", rules: require, nexthop: "notlsa.example.com", level: LevelDANEOnly, reason: "required"},
		{name: "required, lookup fails", rules: require, nexthop: "mxfail.example.com", level: LevelTemp},
		{name: "required, insecure MX", rules: require, nexthop: "smart.insecure.org", level: LevelDANEOnly, reason: "MX RRset"},
		{name: "disabled", rules: disable, nexthop: "dane.example.com", level: LevelMay, ocsp: OCSPRequest},
		{name: "disable loses to require", rules: require, nexthop: "notlsa.example.com", level: LevelDANEOnly},
		{name: "not in dane_domains", rules: off, nexthop: "dane.example.com", level: LevelNone, reason: "dane_domains"},
		{name: "hosts_require_dane", rules: hostsReq, nexthop: "notlsa.example.com", level: LevelDANEOnly,
			hosts: []hostWant{{"plain.example.com", HostNoTLSA}}},
		{name: "hosts_require_dane, other host", rules: hostsReq, nexthop: "dane.example.com", level: LevelNone,
			hosts: []hostWant{{"mx1.dane.example.com", HostSkipped}}},
		{name: "hosts_try_dane by address", rules: hostsTry, nexthop: "dane.example.com", level: LevelDANEOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := tt.rules
			if rules == nil {
				rules = DefaultRules()
			}
			dc := NewDecider(testZone(), DeciderOptions{Rules: rules})
			d, err := dc.Decide(context.Background(), tt.nexthop)
			if err != nil {
				t.Fatal(err)
			}
			if d.Level != tt.level {
				t.Errorf("level %s, want %s\n%s", d.Level, tt.level, d.Explain())
			}
			if tt.hosts != nil {
				var got, want []string
				for _, h := range d.Hosts {
					got = append(got, h.Name+"="+h.Status.String())
				}
				for _, h := range tt.hosts {
					want = append(want, h.name+"="+h.status.String())
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("hosts %v, want %v\n%s", got, want, d.Explain())
				}
			}
			if tt.usage != 0 && d.UsageBits != tt.usage {
				t.Errorf("usage bits %d, want %d", d.UsageBits, tt.usage)
			}
			if tt.ocsp != "" && d.OCSP != tt.ocsp {
				t.Errorf("OCSP %s, want %s", d.OCSP, tt.ocsp)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tt.reason)
			}
			if (d.Level == LevelTemp) != (d.Err != nil) {
				t.Errorf("level %s with Err %v", d.Level, d.Err)
			}
		})
	}
}

func TestClassifyTLSA(t *testing.T) {
	b := func(n int) []byte { d := make([]byte, n); d[0] = 0x30; return d }
	tests := []struct {
		name   string
		tlsa   resolver.TLSA
		pkix   bool
		usable bool
		eff    uint8
	}{
		{"3 1 1", resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: b(32)}, false, true, 3},
		{"2 0 2", resolver.TLSA{Usage: 2, Selector: 0, MatchingType: 2, Data: b(64)}, false, true, 2},
		{"3 0 0 DER", resolver.TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: b(100)}, false, true, 3},
		{"3 0 0 not DER", resolver.TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: []byte{1, 2}}, false, false, 3},
		{"3 1 1 short", resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: b(31)}, false, false, 3},
		{"3 1 2 wrong length", resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 2, Data: b(32)}, false, false, 3},
		{"3 2 1 selector", resolver.TLSA{Usage: 3, Selector: 2, MatchingType: 1, Data: b(32)}, false, false, 3},
		{"3 1 3 matching", resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 3, Data: b(32)}, false, false, 3},
		{"4 1 1 usage", resolver.TLSA{Usage: 4, Selector: 1, MatchingType: 1, Data: b(32)}, true, false, 4},
		{"1 1 1", resolver.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: b(32)}, false, false, 1},
		{"1 1 1 pkix", resolver.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: b(32)}, true, true, 3},
		{"0 0 1 pkix", resolver.TLSA{Usage: 0, Selector: 0, MatchingType: 1, Data: b(32)}, true, false, 0},
		{"0 1 2 pkix", resolver.TLSA{Usage: 0, Selector: 1, MatchingType: 2, Data: b(64)}, true, false, 0},
		{"0 0 0 pkix", resolver.TLSA{Usage: 0, Selector: 0, MatchingType: 0, Data: b(300)}, true, true, 2},
		{"0 0 0", resolver.TLSA{Usage: 0, Selector: 0, MatchingType: 0, Data: b(300)}, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ClassifyTLSA(tt.tlsa, tt.pkix)
			if got.Usable != tt.usable || got.Effective != tt.eff {
				t.Errorf("usable %v as %d (%s), want %v as %d", got.Usable, got.Effective, got.Why, tt.usable, tt.eff)
			}
			if got.Usable != (got.Why == "") {
				t.Errorf("Why %q with usable %v", got.Why, got.Usable)
			}
		})
	}
}

func TestParseNextHop(t *testing.T) {
	tests := []struct {
		in, want string
		noMX     bool
		port     int
		err      bool
	}{
		{in: "Example.COM.", want: "example.com", port: 25},
		{in: "example.com:2525", want: "example.com:2525", port: 2525},
		{in: "[mx.example.com]", want: "[mx.example.com]", noMX: true, port: 25},
		{in: "[mx.example.com]:587", want: "[mx.example.com]:587", noMX: true, port: 587},
		{in: "[192.0.2.1]:26", want: "[192.0.2.1]:26", noMX: true, port: 26},
		{in: "[IPv6:2001:db8::1]", want: "[ipv6:2001:db8::1]", noMX: true, port: 25},
		{in: "[mx.example.com", err: true},
		{in: "[mx.example.com]x", err: true},
		{in: "example.com:0", err: true},
		{in: "example.com:99999", err: true},
		{in: "exa mple.com", err: true},
		{in: "a..b", err: true},
		{in: "", err: true},
		{in: strings.Repeat("a", 64) + ".com", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := ParseNextHop(tt.in)
			if tt.err {
				if err == nil {
					t.Errorf("got %v, want an error", h)
				}
				return
			}
			if err != nil || h.String() != tt.want || h.NoMX != tt.noMX || h.Port != tt.port {
				t.Errorf("got %q noMX %v port %d err %v", h, h.NoMX, h.Port, err)
			}
		})
	}
}
