package spf

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// maxQueries is the most DNS queries one check can make with the default
// limits (see the package documentation):
//
//	1                      TXT for the checked domain
//	+ 10 × (1 + 10)        10 DNS-querying terms; the costliest is mx:
//	                       1 MX query + 10 address queries (include,
//	                       redirect, a, exists: 1 query; ptr: 0 of its own)
//	+ (1 + 10)             the PTR query and the validation of its first 10
//	                       names, made once, shared by ptr terms and %{p}
//	+ 1                    TXT for the exp= explanation of a fail
//	= 123
const maxQueries = 1 + DefaultLookups*(1+DefaultMXNames) + (1 + DefaultPTRNames) + 1

// queryBound is the bound for an outcome that counted o.Lookups terms (the
// term that broke the limit made no query).
func queryBound(o Outcome) int {
	return 1 + min(o.Lookups, DefaultLookups)*(1+DefaultMXNames) + (1 + DefaultPTRNames) + 1
}

// checkBounds asserts the bounds on the queries a check made: the total,
// and per type (TXT: the domain, include and redirect targets, exp; MX:
// one per mx term; PTR: once; never the obsolete type SPF).
func checkBounds(t *testing.T, z *dnstest.Zone, o Outcome) {
	t.Helper()
	q := z.Queries()
	if len(q) > queryBound(o) || len(q) > maxQueries {
		t.Errorf("%d DNS queries, bound %d (lookups %d), absolute bound %d", len(q), queryBound(o), o.Lookups, maxQueries)
	}
	per := map[resolver.Type]int{}
	for _, x := range q {
		per[x.Type]++
	}
	if per[resolver.TypeTXT] > 1+DefaultLookups+1 {
		t.Errorf("%d TXT queries", per[resolver.TypeTXT])
	}
	if per[resolver.TypeMX] > DefaultLookups {
		t.Errorf("%d MX queries", per[resolver.TypeMX])
	}
	if per[resolver.TypePTR] > 1 {
		t.Errorf("%d PTR queries", per[resolver.TypePTR])
	}
	if per[typeSPF] > 0 {
		t.Errorf("queried type SPF")
	}
	if o.Lookups > DefaultLookups+1 {
		t.Errorf("%d lookups counted", o.Lookups)
	}
	if o.Voids > DefaultVoids+1 {
		t.Errorf("%d voids counted", o.Voids)
	}
}

// longTXT splits a record into 255-octet character-strings.
func longTXT(name, s string) resolver.Record {
	var strs []string
	for len(s) > 255 {
		strs = append(strs, s[:255])
		s = s[255:]
	}
	return txt(name, append(strs, s)...)
}

// fill repeats term (with %d replaced by a counter) until the record has
// about n octets.
func fill(n int, term string) string {
	var b strings.Builder
	b.WriteString("v=spf1")
	for i := 0; b.Len() < n; i++ {
		b.WriteString(" ")
		if strings.Contains(term, "%d") {
			fmt.Fprintf(&b, term, i%250)
		} else {
			b.WriteString(term)
		}
	}
	return b.String()
}

func TestHostile(t *testing.T) {
	const client = "203.0.113.7"
	type hostile struct {
		name    string
		zone    func(z *dnstest.Zone)
		want    Result
		queries int // exact query count, -1: only the bounds
	}
	cases := []hostile{
		{"include loop", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 include:b.example.com -all"), txt("b.example.com", "v=spf1 include:example.com -all"))
		}, PermError, 11},
		{"redirect loop", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 redirect=b.example.com"), txt("b.example.com", "v=spf1 redirect=example.com"))
		}, PermError, 11},
		{"self redirect", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 ip4:192.0.2.1 redirect=example.com"))
		}, PermError, 11},
		{"10 nested includes", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 include:n1.example.com -all"))
			for i := 1; i < 10; i++ {
				z.AddRecord(txt(fmt.Sprintf("n%d.example.com", i), fmt.Sprintf("v=spf1 include:n%d.example.com", i+1)))
			}
			z.AddRecord(txt("n10.example.com", "v=spf1 ip4:"+client))
		}, Pass, 11},
		{"11 nested includes", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 include:n1.example.com -all"))
			for i := 1; i <= 10; i++ {
				z.AddRecord(txt(fmt.Sprintf("n%d.example.com", i), fmt.Sprintf("v=spf1 include:n%d.example.com", i+1)))
			}
			z.AddRecord(txt("n11.example.com", "v=spf1 ip4:"+client))
		}, PermError, 11},
		{"64 KiB of ip4, match at the end", func(z *dnstest.Zone) {
			z.AddRecord(longTXT("example.com", fill(65000, "ip4:198.51.100.%d/32")[:64990]+" ip4:"+client+" -all"))
		}, Pass, 1},
		{"64 KiB of a terms", func(z *dnstest.Zone) {
			for i := 0; i < 20; i++ {
				z.AddRecord(a(fmt.Sprintf("h%d.example.com", i), "192.0.2.1"))
			}
			z.AddRecord(longTXT("example.com", fill(65535, "a:h%d.example.com")))
		}, PermError, 11},
		{"64 KiB, syntax error at the end", func(z *dnstest.Zone) {
			z.AddRecord(longTXT("example.com", fill(65500, "a:example.com")+" bogus"))
		}, PermError, 1},
		{"64 KiB of macros", func(z *dnstest.Zone) {
			z.AddRecord(longTXT("example.com", fill(65500, "exists:%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}.%{d}")))
		}, PermError, 4},
		{"void storm", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", fill(2000, "a:nx%d.example.com")))
		}, PermError, 4},
		{"void storm via mx, ptr, exists, include", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 mx:nx1.example.com exists:nx2.example.com ptr include:nx3.example.com -all"))
		}, PermError, 4},
		{"mx with 11 names", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 mx -all"))
			for i := 0; i < 11; i++ {
				z.AddRecord(mx("example.com", uint16(i), fmt.Sprintf("mx%d.example.com", i)), a(fmt.Sprintf("mx%d.example.com", i), client))
			}
		}, PermError, 2},
		{"mx with 10 names", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 mx -all"))
			for i := 0; i < 10; i++ {
				z.AddRecord(mx("example.com", uint16(i), fmt.Sprintf("mx%d.example.com", i)), a(fmt.Sprintf("mx%d.example.com", i), "192.0.2.1"))
			}
		}, Fail, 12},
		{"ptr with 50 names", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 ptr ptr ptr -all"))
			for i := 0; i < 50; i++ {
				n := fmt.Sprintf("p%d.example.com", i)
				z.AddRecord(ptr("7.113.0.203.in-addr.arpa", n), a(n, "192.0.2.1"))
			}
			z.AddRecord(a("p45.example.com", client)) // would validate, but is not among the first 10
		}, Fail, 12},
		{"ptr and %{p} share one PTR lookup", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", "v=spf1 ptr:a.example.net exists:%{p}.x.example.com ptr -all exp=%{p}.exp.example.com"),
				ptr("7.113.0.203.in-addr.arpa", "host.example.com"), a("host.example.com", "192.0.2.1"))
		}, Fail, 5}, // TXT, PTR, A host.example.com (validated once), A unknown.x.example.com, TXT unknown.exp.example.com
		{"timeouts everywhere", func(z *dnstest.Zone) {
			z.AddRecord(txt("example.com", fill(3000, "mx:t%d.example.com")))
			for i := 0; i < 300; i++ {
				z.SetFault(fmt.Sprintf("t%d.example.com", i), 0, dnstest.Timeout)
			}
		}, TempError, 2},
	}
	// The worst case: ten mx terms of ten MX names each, none matching,
	// a %{p} explanation whose PTR names all fail validation.
	cases = append(cases, hostile{"worst case", func(z *dnstest.Zone) {
		var terms []string
		for m := 0; m < 10; m++ {
			terms = append(terms, fmt.Sprintf("mx:m%d.example.com", m))
			for i := 0; i < 10; i++ {
				n := fmt.Sprintf("x%d.m%d.example.com", i, m)
				z.AddRecord(mx(fmt.Sprintf("m%d.example.com", m), uint16(i), n), a(n, "192.0.2.1"))
			}
		}
		z.AddRecord(txt("example.com", "v=spf1 "+strings.Join(terms, " ")+" -all exp=%{p}.exp.example.com"))
		for i := 0; i < 30; i++ {
			n := fmt.Sprintf("p%d.example.org", i)
			z.AddRecord(ptr("7.113.0.203.in-addr.arpa", n), a(n, "192.0.2.1"))
		}
	}, Fail, maxQueries})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z := dnstest.NewZone()
			tc.zone(z)
			out := (&Checker{DNS: z}).CheckHost(ctx, ip(client), "example.com", "user@example.com", "helo.example.com")
			if out.Result != tc.want {
				t.Errorf("result %s (%s), want %s", out.Result, out.Problem, tc.want)
			}
			if n := len(z.Queries()); tc.queries >= 0 && n != tc.queries {
				t.Errorf("%d queries, want %d", n, tc.queries)
			}
			checkBounds(t, z, out)
		})
	}
	if maxQueries != 123 {
		t.Errorf("maxQueries = %d", maxQueries)
	}
}

// TestConformanceQueryBounds checks the query bounds on every case of the
// suite.
func TestConformanceQueryBounds(t *testing.T) {
	for _, sc := range loadSuite(t) {
		for name, tc := range sc.Tests {
			z := buildZone(t, sc.ZoneData)
			out := (&Checker{DNS: z}).CheckMailFrom(ctx, Request{IP: ip(tc.Host), Helo: tc.Helo, Sender: tc.MailFrom})
			t.Run(name, func(t *testing.T) { checkBounds(t, z, out) })
		}
	}
}

// TestHostileMacroBomb is a regression test: a domain-spec of many macros
// over a long local part once cost O(macros × value length) (10 s for a
// 1 MB record and a 10 KB local part). Only the last 4 KiB of a domain
// expansion is now computed.
func TestHostileMacroBomb(t *testing.T) {
	guess := "v=spf1 exists:" + strings.Repeat("%{l9999r.-+,/_=}", 1<<16) + ".x.example.com -all"
	sender := strings.Repeat("x.", 5000) + "@example.com"
	z := dnstest.NewZone()
	start := time.Now()
	out := (&Checker{DNS: z}).CheckHostGuess(ctx, ip("192.0.2.1"), "example.com", sender, "h", guess)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if out.Result != Fail || !out.Guessed {
		t.Errorf("%+v", out)
	}
	checkBounds(t, z, out)
}
