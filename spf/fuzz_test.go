package spf

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// fuzzSeeds are records from the tests of this package and the suite.
var fuzzSeeds = []string{
	"v=spf1 +a/24//64 mx:mail.example.com ~ptr:Example.COM ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{ir}.%{v}._spf.%{d2} ?include:_spf.example.net -all redirect=_spf.example.com exp=explain.%{d} foo=bar ",
	"v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all",
	"v=spf1 exists:%{l2r+-}.user.%{d2}",
	"v=spf1 exists:%{i}.%{l2r-}.user.%{d2}",
	"v=spf1 -all exp=foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.com",
	"v=spf1 a:foo:bar/baz.example.com",
	"v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
	"v=spf1 ip6:::1.1.1.1/0",
	"v=spf1 a/24/64 -all",
	"v=spf1 redirect=%{d}.d.spf.example.com.",
	"v=spf1 -include:_spfh.%{d2} ip4:1.2.3.0/24 -all",
	"v=spf1 a:%{H}.bar -all",
	"v=spf1 ptr:fe.example.org ptr:sgp.example.com exp=_expspf.example.org -all",
	"v=spf1 foo=%abc",
	"v=spf1 a:%{d999999999999999999999}.example.com",
	"V=SPF1 MX/0 -ALL",
	"v=spf1 exists:%{p}.should.example.com ~exists:%{p}.ok.example.com",
}

// suiteRecords adds the suite's TXT/SPF strings to the seeds when the
// suite is present.
func suiteRecords(tb testing.TB) []string {
	dir := findSharedTestdata(tb)
	if dir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "spf", "rfc7208-tests.yml"))
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		for _, p := range []string{"- SPF:", "- TXT:"} {
			if v, ok := strings.CutPrefix(line, p); ok {
				out = append(out, strings.Trim(strings.TrimSpace(v), `"'`))
			}
		}
	}
	return out
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range append(fuzzSeeds, suiteRecords(f)...) {
		f.Add(s, "192.0.2.1")
	}
	f.Add("v=spf1 ip6:2001:db8::/32 a//64 -all", "2001:db8::1")
	f.Fuzz(func(t *testing.T, record, client string) {
		addr, err := netip.ParseAddr(client)
		if err != nil {
			addr = netip.MustParseAddr("192.0.2.1")
		}
		rec, err := ParseRecord(record)
		if err == nil {
			if !isSPFRecord(record) {
				t.Fatalf("accepted a record without v=spf1: %q", record)
			}
			for _, d := range rec.Directives {
				switch d.Qualifier {
				case Pass, Fail, SoftFail, Neutral:
				default:
					t.Fatalf("bad qualifier %q", d.Qualifier)
				}
				switch d.Mechanism {
				case MechIP4, MechIP6:
					if !d.Prefix.IsValid() {
						t.Fatalf("invalid prefix in %q", d.Text)
					}
				case MechA, MechMX:
					if d.CIDR4 < 0 || d.CIDR4 > 32 || d.CIDR6 < 0 || d.CIDR6 > 128 {
						t.Fatalf("bad CIDR in %q", d.Text)
					}
				case MechAll, MechPTR, MechInclude, MechExists:
				default:
					t.Fatalf("unknown mechanism %q accepted", d.Mechanism)
				}
				for i := 0; i < len(d.Text); i++ {
					if d.Text[i] <= ' ' || d.Text[i] >= 0x7f {
						t.Fatalf("term %q holds a non-printable octet", d.Text)
					}
				}
			}
			again, err := ParseRecord(record)
			if err != nil || len(again.Directives) != len(rec.Directives) {
				t.Fatalf("parse not deterministic")
			}
		}
		// Evaluate the record against a zone that serves it everywhere a
		// query could lead; the query bounds must hold.
		z := dnstest.NewZone().AddRecord(longTXT("example.com", record), longTXT("inc.example.com", record))
		out := (&Checker{DNS: z, Now: func() time.Time { return time.Unix(0, 0) }}).CheckHost(ctx, addr, "example.com", "user@example.com", "helo.example.com")
		if !out.Result.Valid() {
			t.Fatalf("invalid result %q", out.Result)
		}
		switch {
		case !isSPFRecord(record) && out.Result != None:
			t.Fatalf("no SPF record but result %s", out.Result)
		case isSPFRecord(record) && err != nil && out.Result != PermError:
			t.Fatalf("syntax error %v but result %s", err, out.Result)
		}
		checkBounds(t, z, out)
		for _, s := range []string{out.HeaderComment(), out.SMTPComment(), out.ReceivedSPF("r", Request{IP: addr, Sender: "user@example.com"})} {
			if strings.ContainsAny(s, "\r\n") {
				t.Fatalf("CR/LF in %q", s)
			}
		}
	})
}

func FuzzExpandMacro(f *testing.F) {
	for _, s := range []string{
		"%{s}", "%{o}", "%{d4}", "%{d2r}", "%{l-}", "%{lr-}", "%{l1r-}", "%{ir}.%{v}._spf.%{d2}",
		"%{c} is queried as %{ir}.%{v}.arpa", "http://example.com/why.html?l=%{L}", "%%%_%-", "%{p}",
		"The %{x}-files.", "%{d0}", "%{l100r+-,/_=.}", "foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.com",
		"%{r} %{t} %{C} %{T}", "%", "%{", "%{}", "%{d", "exp.%{d}.",
	} {
		f.Add(s, "strong-bad@email.example.com", "2001:db8::cb01")
	}
	f.Add("%{i}.%{L}", "~jack&jill=up-a_b3.c@e8.example.com", "192.0.2.3")
	f.Fuzz(func(t *testing.T, spec, sender, client string) {
		addr, err := netip.ParseAddr(client)
		if err != nil {
			addr = netip.MustParseAddr("192.0.2.3")
		}
		local, dom, _ := strings.Cut(sender, "@")
		v := &macroVars{sender: sender, local: local, senderDomain: dom, domain: "email.example.com",
			helo: sender, receiver: "mx.example.org", ip: addr, now: time.Unix(0, 0),
			ptr: func(string) string { return "host.example.com" }}
		if ms, err := parseDomainSpec(spec); err == nil {
			name, ok := v.expandDomain(ms)
			if n2, ok2 := naiveExpandDomain(v, ms); n2 != name || ok2 != ok {
				t.Fatalf("expandDomain(%q) = %q, %v; full expansion gives %q, %v", spec, name, ok, n2, ok2)
			}
			if ok {
				if len(name) > maxNameLen || name == "" || strings.HasSuffix(name, ".") {
					t.Fatalf("expandDomain(%q) = %q", spec, name)
				}
				for l := range strings.SplitSeq(name, ".") {
					if l == "" || len(l) > 63 {
						t.Fatalf("expandDomain(%q) = %q has a bad label", spec, name)
					}
				}
			}
		}
		ms, _, _, err := parseMacroString(spec, true)
		if err != nil {
			if !strings.Contains(spec, "%") && allPrintable(spec) {
				t.Fatalf("literal text %q rejected: %v", spec, err)
			}
			return
		}
		out := v.expandText(ms)
		if len(out) > MaxExplanation {
			t.Fatalf("explanation of %d octets", len(out))
		}
		if !strings.Contains(spec, "%") && len(spec) <= MaxExplanation && out != spec {
			t.Fatalf("literal %q expanded to %q", spec, out)
		}
	})
}

func allPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
