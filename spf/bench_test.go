package spf

import (
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// benchZone is a typical policy: own networks, two providers by include
// (one of them nested), mx, and a fail-all with an explanation.
func benchZone() *dnstest.Zone {
	return dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8:1::/48 include:_spf.provider.example include:spf.mailer.example mx -all exp=why.example.com"),
		txt("_spf.provider.example", "v=spf1 include:_netblocks.provider.example ~all"),
		txt("_netblocks.provider.example", "v=spf1 ip4:198.51.100.0/26 ip4:198.51.100.64/26 ip6:2001:db8:2::/48 ~all"),
		txt("spf.mailer.example", "v=spf1 ip4:203.0.113.0/28 ip4:203.0.113.32/28 ip4:203.0.113.64/27 -all"),
		mx("example.com", 10, "mx1.example.com"), mx("example.com", 20, "mx2.example.com"),
		a("mx1.example.com", "192.0.2.200"), a("mx2.example.com", "192.0.2.201"),
		txt("why.example.com", "%{i} is not one of %{d}'s mail servers"),
	)
}

// BenchmarkCheckHost measures a pass through the second include (4 TXT
// queries) against the in-memory zone.
func BenchmarkCheckHost(b *testing.B) {
	c := &Checker{DNS: benchZone(), Receiver: "mx.example.org"}
	client := ip("203.0.113.70")
	b.ReportAllocs()
	for b.Loop() {
		if out := c.CheckHost(ctx, client, "example.com", "user@example.com", "mail.example.com"); out.Result != Pass {
			b.Fatal(out)
		}
	}
}

// BenchmarkCheckHostFail measures the longest path of the same policy: a
// fail after every term, with the explanation.
func BenchmarkCheckHostFail(b *testing.B) {
	c := &Checker{DNS: benchZone(), Receiver: "mx.example.org"}
	client := ip("233.252.0.1")
	b.ReportAllocs()
	for b.Loop() {
		if out := c.CheckHost(ctx, client, "example.com", "user@example.com", "mail.example.com"); out.Result != Fail || out.Explanation == "" {
			b.Fatal(out)
		}
	}
}

func BenchmarkParseRecord(b *testing.B) {
	const rec = "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8:1::/48 include:_spf.provider.example include:spf.mailer.example mx a:%{ir}.%{v}.x.example.com -all exp=why.example.com"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}
