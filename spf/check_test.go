package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func txt(name string, strs ...string) resolver.Record {
	return resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: strs}
}

func a(name, ip string) resolver.Record {
	addr := netip.MustParseAddr(ip)
	t := resolver.TypeA
	if addr.Is6() {
		t = resolver.TypeAAAA
	}
	return resolver.Record{Name: name, Type: t, IP: addr}
}

func mx(name string, pref uint16, target string) resolver.Record {
	return resolver.Record{Name: name, Type: resolver.TypeMX, Pref: pref, Target: target}
}

func ptr(name, target string) resolver.Record {
	return resolver.Record{Name: name, Type: resolver.TypePTR, Target: target}
}

var ctx = context.Background()

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestCheckMailFromAndHelo(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all"),
		txt("mail.example.com", "v=spf1 a -all"),
		a("mail.example.com", "198.51.100.7"),
	)
	c := &Checker{DNS: z, Receiver: "mx.example.org"}
	out := c.CheckMailFrom(ctx, Request{IP: ip("192.0.2.9"), Helo: "mail.example.com", Sender: "user@example.com"})
	if out.Result != Pass || out.Mechanism != "ip4:192.0.2.0/24" || out.Identity != IdentityMailFrom || out.Domain != "example.com" || out.Sender != "user@example.com" {
		t.Errorf("mailfrom: %+v", out)
	}
	// Null sender: postmaster@helo.
	out = c.CheckMailFrom(ctx, Request{IP: ip("198.51.100.7"), Helo: "mail.example.com"})
	if out.Result != Pass || out.Domain != "mail.example.com" || out.Sender != "postmaster@mail.example.com" {
		t.Errorf("null sender: %+v", out)
	}
	out = c.CheckHelo(ctx, Request{IP: ip("198.51.100.8"), Helo: "mail.example.com", Sender: "user@example.com"})
	if out.Result != Fail || out.Identity != IdentityHelo || out.Domain != "mail.example.com" || out.Mechanism != "-all" {
		t.Errorf("helo: %+v", out)
	}
	// IPv4-mapped IPv6 is IPv4.
	out = c.CheckMailFrom(ctx, Request{IP: ip("::ffff:192.0.2.9"), Helo: "x", Sender: "user@example.com"})
	if out.Result != Pass || out.IP != ip("192.0.2.9") {
		t.Errorf("mapped: %+v", out)
	}
	// Sender without local part, and without "@".
	out = c.CheckHost(ctx, ip("192.0.2.9"), "example.com", "@example.com", "x")
	if out.Sender != "postmaster@example.com" || out.Result != Pass {
		t.Errorf("no local part: %+v", out)
	}
	out = c.CheckHost(ctx, ip("192.0.2.9"), "example.com", "", "x")
	if out.Sender != "postmaster@example.com" || out.Result != Pass {
		t.Errorf("empty sender: %+v", out)
	}
}

func TestCheckNone(t *testing.T) {
	z := dnstest.NewZone().AddRecord(txt("nospf.example.com", "hello"), a("nx.example.com", "192.0.2.1"))
	c := &Checker{DNS: z}
	for _, d := range []string{"nospf.example.com", "nx.example.com", "nothere.example.com", "com", "[192.0.2.1]", "a..b.example"} {
		if out := c.CheckHost(ctx, ip("192.0.2.1"), d, "", "h"); out.Result != None {
			t.Errorf("%s: %+v", d, out)
		}
	}
	// Invalid domains are not queried.
	z.ResetQueries()
	c.CheckHost(ctx, ip("192.0.2.1"), "[192.0.2.1]", "", "h")
	if q := z.Queries(); len(q) != 0 {
		t.Errorf("queries for an invalid domain: %v", q)
	}
}

func TestCheckErrors(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 a:slow.example.com -all"),
		txt("servfail.example.com", "v=spf1 -all"),
		txt("mxerr.example.com", "v=spf1 mx -all"),
		mx("mxerr.example.com", 10, "slow.example.com"),
	).SetFault("slow.example.com", 0, dnstest.Timeout).SetFault("servfail.example.com", resolver.TypeTXT, dnstest.ServFail)
	c := &Checker{DNS: z}
	for _, d := range []string{"example.com", "servfail.example.com", "mxerr.example.com"} {
		out := c.CheckHost(ctx, ip("192.0.2.1"), d, "", "h")
		if out.Result != TempError || out.Problem == "" {
			t.Errorf("%s: %+v", d, out)
		}
	}
	// A cancelled context gives temperror.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if out := c.CheckHost(cctx, ip("192.0.2.1"), "servfail.example.com", "", "h"); out.Result != TempError {
		t.Errorf("cancelled: %+v", out)
	}
	if out := (&Checker{}).CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h"); out.Result != TempError {
		t.Errorf("no DNS: %+v", out)
	}
	if out := c.CheckHost(ctx, netip.Addr{}, "example.com", "", "h"); out.Result != PermError {
		t.Errorf("no IP: %+v", out)
	}
}

func TestCheckPTR(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 ptr -all"),
		txt("v6.example.com", "v=spf1 ptr:Example.COM -all"),
		ptr("9.2.0.192.in-addr.arpa", "Mail.Example.com."),
		a("mail.example.com", "192.0.2.9"),
		ptr("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "v6host.example.com"),
		a("v6host.example.com", "2001:db8::1"),
	).SetFault("8.2.0.192.in-addr.arpa", 0, dnstest.ServFail)
	c := &Checker{DNS: z}
	if out := c.CheckHost(ctx, ip("192.0.2.9"), "example.com", "", "h"); out.Result != Pass {
		t.Errorf("v4: %+v", out)
	}
	if out := c.CheckHost(ctx, ip("2001:db8::1"), "v6.example.com", "", "h"); out.Result != Pass {
		t.Errorf("v6: %+v", out)
	}
	// A DNS error on the PTR query: no match, not temperror (§5.5).
	if out := c.CheckHost(ctx, ip("192.0.2.8"), "example.com", "", "h"); out.Result != Fail {
		t.Errorf("ptr error: %+v", out)
	}
}

func TestCheckMXNull(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 mx ?all"),
		mx("example.com", 0, "."),
	)
	out := (&Checker{DNS: z}).CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h")
	if out.Result != Neutral || out.Mechanism != "?all" {
		t.Errorf("%+v", out)
	}
	if n := len(z.Queries()); n != 2 {
		t.Errorf("%d queries, want 2 (no address query for a null MX)", n)
	}
}

func TestCheckHostGuess(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		a("noguess.example.com", "192.0.2.1"),
		mx("noguess.example.com", 10, "mx.example.net"),
		a("mx.example.net", "198.51.100.20"),
		txt("spf.example.com", "v=spf1 -all"),
	)
	c := &Checker{DNS: z}
	const guess = "v=spf1 a/24 mx/24 ptr ?all"
	out := c.CheckHostGuess(ctx, ip("198.51.100.99"), "noguess.example.com", "", "h", guess)
	if out.Result != Pass || !out.Guessed || out.Mechanism != "mx/24" {
		t.Errorf("guess: %+v", out)
	}
	out = c.CheckHostGuess(ctx, ip("203.0.113.1"), "noguess.example.com", "", "h", "a/24 mx/24 ptr ?all")
	if out.Result != Neutral || !out.Guessed {
		t.Errorf("guess without version: %+v", out)
	}
	out = c.CheckHostGuess(ctx, ip("198.51.100.99"), "spf.example.com", "", "h", guess)
	if out.Result != Fail || out.Guessed {
		t.Errorf("published record wins: %+v", out)
	}
	out = c.CheckHostGuess(ctx, ip("198.51.100.99"), "noguess.example.com", "", "h", "v=spf1 bogus")
	if out.Result != PermError {
		t.Errorf("bad guess: %+v", out)
	}
}

func TestCheckExplanation(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 -all exp=why.%{d}"),
		txt("why.example.com", "%{i} may not send for %{d}; ", "see %{r} at %{t}"),
		txt("soft.example.com", "v=spf1 ~all exp=why.example.com"),
	)
	c := &Checker{DNS: z, Receiver: "mx.example.org", Now: func() time.Time { return time.Unix(42, 0) }}
	out := c.CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h")
	if want := "192.0.2.1 may not send for example.com; see mx.example.org at 42"; out.Explanation != want {
		t.Errorf("got %q, want %q", out.Explanation, want)
	}
	if out.SMTPComment() != out.Explanation {
		t.Errorf("smtp comment %q", out.SMTPComment())
	}
	// Only fail fetches an explanation.
	z.ResetQueries()
	out = c.CheckHost(ctx, ip("192.0.2.1"), "soft.example.com", "", "h")
	if out.Result != SoftFail || out.Explanation != "" || len(z.Queries()) != 1 {
		t.Errorf("softfail: %+v, %d queries", out, len(z.Queries()))
	}
}

func TestCheckLimitsConfigurable(t *testing.T) {
	z := dnstest.NewZone().AddRecord(txt("example.com", "v=spf1 a:n1.example.com a:n2.example.com a:n3.example.com ?all"))
	if out := (&Checker{DNS: z}).CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h"); out.Result != PermError || out.Voids != 3 {
		t.Errorf("default: %+v", out)
	}
	c := &Checker{DNS: z, Limits: Limits{Voids: 5}}
	if out := c.CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h"); out.Result != Neutral || out.Voids != 3 || out.Lookups != 3 {
		t.Errorf("voids=5: %+v", out)
	}
	c = &Checker{DNS: z, Limits: Limits{Lookups: 2, Voids: 5}}
	if out := c.CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h"); out.Result != PermError {
		t.Errorf("lookups=2: %+v", out)
	}
}

func TestCheckCNAMEAndCase(t *testing.T) {
	z := dnstest.NewZone().AddRecord(
		resolver.Record{Name: "alias.example.com", Type: resolver.TypeCNAME, Target: "real.example.com"},
		txt("real.example.com", "V=SPF1 ", "IP4:192.0.2.0/24 -ALL"),
	)
	out := (&Checker{DNS: z}).CheckHost(ctx, ip("192.0.2.1"), "Alias.Example.COM.", "", "h")
	if out.Result != Pass || out.Mechanism != "IP4:192.0.2.0/24" {
		t.Errorf("%+v", out)
	}
}

func TestReceivedSPF(t *testing.T) {
	z := dnstest.NewZone().AddRecord(txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all"))
	c := &Checker{DNS: z, Receiver: "mx.example.org"}
	r := Request{IP: ip("192.0.2.1"), Helo: "mail.example.com", Sender: "user@example.com"}
	out := c.CheckMailFrom(ctx, r)
	got := out.ReceivedSPF("", r)
	want := `pass (mx.example.org: 192.0.2.1 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)) client-ip=192.0.2.1; envelope-from="user@example.com"; helo=mail.example.com; receiver=mx.example.org; identity=mailfrom; mechanism="ip4:192.0.2.0/24"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Unbalanced parentheses in the comment are escaped (they can come
	// from the sender's local part), CR/LF never reach the header.
	r = Request{IP: ip("198.51.100.200"), Helo: "evil\r\nX-Injected: 1", Sender: "a(b))\"c\\\r\nX: y@example.com"}
	out = c.CheckMailFrom(ctx, r)
	got = out.ReceivedSPF("rcv.example", r)
	if strings.ContainsAny(got, "\r\n") || !strings.Contains(got, `a(b)\)"c\\??X: y@example.com`) ||
		!strings.Contains(got, `envelope-from="a(b))\"c\\??X: y@example.com"`) || !strings.Contains(got, `helo="evil??X-Injected: 1"`) || !strings.HasPrefix(got, "fail (rcv.example: ") ||
		!strings.Contains(got, `mechanism=-all`) {
		t.Errorf("got %s", got)
	}
	if c := out.HeaderComment(); strings.ContainsAny(c, "\r\n") || !strings.HasPrefix(c, "mx.example.org: 198.51.100.200 is not authorized") {
		t.Errorf("comment %q", c)
	}
	if s := out.SMTPComment(); !strings.Contains(s, "open-spf.org/Why") || !strings.Contains(s, "'-all'") || strings.ContainsAny(s, "\r\n") {
		t.Errorf("smtp comment %q", s)
	}
	// Null sender, permerror with problem=.
	z.AddRecord(txt("bad.example.com", "v=spf1 foo"))
	r = Request{IP: ip("192.0.2.1"), Helo: "bad.example.com"}
	out = c.CheckMailFrom(ctx, r)
	got = out.ReceivedSPF("", r)
	if !strings.HasPrefix(got, "permerror (") || !strings.Contains(got, `envelope-from="";`) || !strings.Contains(got, "problem=") {
		t.Errorf("got %s", got)
	}
}

func TestHeaderCommentResults(t *testing.T) {
	base := Outcome{Identity: IdentityHelo, Domain: "mail.example.com", Sender: "postmaster@mail.example.com", IP: ip("192.0.2.1"), Receiver: "unknown", Mechanism: "default"}
	for r, frag := range map[Result]string{
		Pass: "is authorized", Fail: "is not authorized", SoftFail: "probably not", Neutral: "neither permitted nor denied",
		None: "no SPF record", PermError: "permanent error", TempError: "temporary error",
	} {
		o := base
		o.Result = r
		c := o.HeaderComment()
		if !strings.HasPrefix(c, "mail.example.com: ") || !strings.Contains(c, frag) || !strings.Contains(c, "'helo' identity") {
			t.Errorf("%s: %q", r, c)
		}
		if o.SMTPComment() == "" {
			t.Errorf("%s: empty SMTP comment", r)
		}
	}
}

// nilQuerier answers every query with neither an answer nor an error.
type nilQuerier struct{}

func (nilQuerier) Query(context.Context, string, resolver.Type) (*resolver.Answer, error) {
	return nil, nil
}

func TestCheckNilAnswer(t *testing.T) {
	if out := (&Checker{DNS: nilQuerier{}}).CheckHost(ctx, ip("192.0.2.1"), "example.com", "", "h"); out.Result != None {
		t.Errorf("%+v", out)
	}
}
