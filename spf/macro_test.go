package spf

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// rfcVars are the values of the examples in RFC 7208 §7.4.
func rfcVars(ip string) *macroVars {
	return &macroVars{
		sender: "strong-bad@email.example.com", local: "strong-bad", senderDomain: "email.example.com",
		domain: "email.example.com", helo: "mx.example.org", receiver: "mx.example.net",
		ip: netip.MustParseAddr(ip), now: time.Unix(1700000000, 0),
	}
}

func expandTestDomain(t *testing.T, v *macroVars, spec string) string {
	t.Helper()
	ms, err := parseDomainSpec(spec)
	if err != nil {
		// Not every example is a valid domain-spec on its own (%{l}):
		// expand it as a macro-string.
		ms, _, _, err = parseMacroString(spec, false)
		if err != nil {
			t.Fatalf("parse %q: %v", spec, err)
		}
	}
	name, ok := v.expandDomain(ms)
	if !ok {
		t.Fatalf("expand %q: no valid name", spec)
	}
	return name
}

// TestMacroRFCExamples checks every example of RFC 7208 §7.4.
func TestMacroRFCExamples(t *testing.T) {
	v := rfcVars("192.0.2.3")
	for spec, want := range map[string]string{
		"%{s}":                              "strong-bad@email.example.com",
		"%{o}":                              "email.example.com",
		"%{d}":                              "email.example.com",
		"%{d4}":                             "email.example.com",
		"%{d3}":                             "email.example.com",
		"%{d2}":                             "example.com",
		"%{d1}":                             "com",
		"%{dr}":                             "com.example.email",
		"%{d2r}":                            "example.email",
		"%{l}":                              "strong-bad",
		"%{l-}":                             "strong.bad",
		"%{lr}":                             "strong-bad",
		"%{lr-}":                            "bad.strong",
		"%{l1r-}":                           "strong",
		"%{ir}.%{v}._spf.%{d2}":             "3.2.0.192.in-addr._spf.example.com",
		"%{lr-}.lp._spf.%{d2}":              "bad.strong.lp._spf.example.com",
		"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}":   "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
		"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}":  "3.2.0.192.in-addr.strong.lp._spf.example.com",
		"%{d2}.trusted-domains.example.net": "example.com.trusted-domains.example.net",
	} {
		if got := expandTestDomain(t, v, spec); got != want {
			t.Errorf("%s = %q, want %q", spec, got, want)
		}
	}
	// IPv6 example; the RFC writes the nibbles in lower case, this package
	// in upper case (see dotFormat): DNS names compare case-insensitively.
	v6 := rfcVars("2001:db8::cb01")
	got := expandTestDomain(t, v6, "%{ir}.%{v}._spf.%{d2}")
	if want := "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"; !strings.EqualFold(got, want) {
		t.Errorf("IPv6: %q, want %q", got, want)
	}
}

func TestMacroExplanationLetters(t *testing.T) {
	v := rfcVars("2001:db8::cb01")
	ms, _, _, err := parseMacroString("%{c} %{r} %{t} %{v} %{h} %{C} %{S} %% %_ %- end.", true)
	if err != nil {
		t.Fatal(err)
	}
	want := "2001:db8::cb01 mx.example.net 1700000000 ip6 mx.example.org 2001%3Adb8%3A%3Acb01 strong-bad%40email.example.com %   %20 end."
	if got := v.expandText(ms); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// %{p} without a lookup function, and %{r} without a receiver.
	v.receiver = ""
	ms, _, _, _ = parseMacroString("%{p} %{r}", true)
	if got := v.expandText(ms); got != "unknown unknown" {
		t.Errorf("got %q", got)
	}
}

func TestMacroTransformers(t *testing.T) {
	v := rfcVars("192.0.2.3")
	v.local = "foo-bar+zip+quux"
	for spec, want := range map[string]string{
		"%{l2r+-}.x.example":   "bar.foo.x.example",
		"%{l}.x.example":       "foo-bar+zip+quux.x.example",
		"%{L}.x.example":       "foo-bar%2Bzip%2Bquux.x.example",
		"%{l+}.x.example":      "foo-bar.zip.quux.x.example",
		"%{l1+}.x.example":     "quux.x.example",
		"%{l100R-+}.x.example": "quux.zip.bar.foo.x.example",
		"%{d02}.x.example":     "example.com.x.example",
		"%{i1r}.x.example":     "192.x.example",
		"%{V}.x.example":       "in-addr.x.example",
	} {
		if got := expandTestDomain(t, v, spec); got != want {
			t.Errorf("%s = %q, want %q", spec, got, want)
		}
	}
}

func TestMacroTruncation(t *testing.T) {
	v := rfcVars("192.0.2.3")
	v.senderDomain = "somewhat.long.exp.example.com"
	ms, err := parseDomainSpec("foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.com")
	if err != nil {
		t.Fatal(err)
	}
	name, ok := v.expandDomain(ms)
	want := strings.Repeat("somewhat.long.exp.example.com.", 8) + "example.com"
	if !ok || name != want {
		t.Errorf("got %q %v, want %q", name, ok, want)
	}
	// A huge expansion keeps only a tail but truncates the same way.
	v.local = strings.Repeat("abcdefgh.", 20000)
	ms, _ = parseDomainSpec("%{l}%{l}%{l}x.example.com")
	name, ok = v.expandDomain(ms)
	if !ok || len(name) > 253 || !strings.HasSuffix(name, "abcdefgh.x.example.com") || strings.HasPrefix(name, ".") {
		t.Errorf("got %q %v", name, ok)
	}
	if full := targetNameOf(strings.Repeat(v.local, 3) + "x.example.com"); full != name {
		t.Errorf("tail truncation %q differs from full truncation %q", name, full)
	}
	// A single label longer than 253 octets cannot be truncated.
	v.local = strings.Repeat("a", 300)
	ms, _ = parseDomainSpec("%{l}")
	if name, ok := v.expandDomain(ms); ok {
		t.Errorf("got %q", name)
	}
}

func targetNameOf(s string) string { n, _ := targetName(s); return n }

func TestMacroExplanationCap(t *testing.T) {
	v := rfcVars("192.0.2.3")
	v.local = strings.Repeat("x", 1000)
	ms, _, _, err := parseMacroString(strings.Repeat("%{l}", 10), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.expandText(ms); len(got) != MaxExplanation {
		t.Errorf("len %d", len(got))
	}
}

func TestDomainSpecEnd(t *testing.T) {
	for spec, ok := range map[string]bool{
		"example.com":   true,
		"example.com.":  true,
		"%{d}":          true,
		"x.%-":          true,
		"%{d}.com":      true,
		"%{d}com":       false,
		"%{d}.":         false,
		"com":           false,
		".":             false,
		"":              false,
		"foo.-com":      false,
		"foo.com-":      false,
		"foo.123":       false,
		"foo.1-2":       true,
		"foo.xn--abc":   true,
		"example.com..": false,
	} {
		_, err := parseDomainSpec(spec)
		if (err == nil) != ok {
			t.Errorf("parseDomainSpec(%q) error %v, want ok=%v", spec, err, ok)
		}
	}
}

func TestValidIdentityDomain(t *testing.T) {
	for d, ok := range map[string]bool{
		"example.com": true, "example.com.": true, "_spf.example.com": true, "a-b.example": true,
		"com": false, "": false, "[1.2.3.5]": false, "1.2.3.5": false, "a..example.com": false,
		strings.Repeat("a", 64) + ".example.com": false, strings.Repeat("a", 63) + ".example.com": true,
		"exa mple.com": false, "exämple.com": false, "%%.example.com": false,
		strings.Repeat("abcdefgh.", 28) + "com": false,
	} {
		if validIdentityDomain(d) != ok {
			t.Errorf("validIdentityDomain(%q) != %v", d, ok)
		}
	}
}

// naiveExpandDomain expands every part, then truncates: the reference for
// the bounded right-to-left expansion.
func naiveExpandDomain(v *macroVars, ms macroString) (string, bool) {
	var b strings.Builder
	for i := range ms {
		if ms[i].letter == 0 {
			b.WriteString(ms[i].lit)
		} else {
			b.WriteString(ms[i].transform(v.value(ms[i].letter)))
		}
	}
	return targetName(b.String())
}

func TestExpandDomainBoundedEqualsNaive(t *testing.T) {
	v := rfcVars("192.0.2.3")
	for _, local := range []string{"a", "ab.cd", strings.Repeat("abc.", 100), strings.Repeat("x", 70) + "." + strings.Repeat("y.", 300), strings.Repeat("q", 5000)} {
		v.local = local
		for _, spec := range []string{
			"%{l}.example.com",
			strings.Repeat("%{l}.", 50) + "example.com",
			strings.Repeat("%{l}", 50) + ".example.com",
			strings.Repeat("%{lr}-%{d}.", 200) + "%{o}",
			"foo." + strings.Repeat("%{l1}.", 3000) + "example.com",
			strings.Repeat("%{l}", 2000) + "%{d}",
		} {
			ms, err := parseDomainSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			got, gok := v.expandDomain(ms)
			want, wok := naiveExpandDomain(v, ms)
			if got != want || gok != wok {
				t.Errorf("local %.20q spec %.30q: got %q %v, want %q %v", local, spec, got, gok, want, wok)
			}
		}
	}
}
