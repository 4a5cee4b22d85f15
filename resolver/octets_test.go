package resolver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestTXTAndNamesCrossTheWireAsOctets guards issue 13 item 10: TXT strings
// reached callers in miekg/dns's presentation form (`\"`, `\\`, `\195`)
// and names with a space were refused before any query, so SPF, DKIM and
// DMARC saw other text over the wire than the zone held.
func TestTXTAndNamesCrossTheWireAsOctets(t *testing.T) {
	txt := []string{
		`v=spf1 a:x` + "\x00" + ` -all`,
		`quote " and backslash \ and semicolon ;`,
		"\xef\xbb\xbfExplanation é",
		"tab\tand\x7fdel and \x80\xff",
	}
	z := dnstest.NewZone().AddRecord(
		resolver.Record{Name: "txt.example.com", Type: resolver.TypeTXT, TXT: txt},
		resolver.Record{Name: "macro%percent  space%20url-space.example.com", Type: resolver.TypeTXT, TXT: []string{"spaced"}},
		resolver.Record{Name: "a\\b.example.com", Type: resolver.TypeMX, Pref: 10, Target: "mx (1);@$.example.com"},
		resolver.Record{Name: "alias.example.com", Type: resolver.TypeCNAME, Target: "Ünï code.example.com"},
		resolver.Record{Name: "Ünï code.example.com", Type: resolver.TypeTXT, TXT: []string{"target"}},
	)
	s := dnstest.NewServer(t, z)
	r := newResolver(t, resolver.Options{CacheSize: -1}, s.Addr())

	if got := query(t, r, "txt.example.com", resolver.TypeTXT).Records; len(got) != 1 || !slices.Equal(got[0].TXT, txt) {
		t.Errorf("TXT = %q, want %q", got, txt)
	}
	if got := query(t, r, "macro%percent  space%20url-space.example.com", resolver.TypeTXT).Records; len(got) != 1 || got[0].TXT[0] != "spaced" {
		t.Errorf("name with spaces: %+v", got)
	}
	if got := query(t, r, "A\\B.example.com", resolver.TypeMX).Records; len(got) != 1 || got[0].Target != "mx (1);@$.example.com" || got[0].Name != "a\\b.example.com" {
		t.Errorf("MX = %+v", got)
	}
	a := query(t, r, "alias.example.com", resolver.TypeTXT)
	if len(a.CNAME) != 1 || a.CNAME[0] != "Ünï code.example.com" || len(a.Records) != 1 || a.Records[0].TXT[0] != "target" {
		t.Errorf("CNAME to a non-ASCII name: %+v", a)
	}
}

// TestNormalizeNameASCIIOnly: DNS compares only ASCII letters without case
// (RFC 4343 §3); other octets, including invalid UTF-8, stay as they are.
func TestNormalizeNameASCIIOnly(t *testing.T) {
	for in, want := range map[string]string{
		"MX.Example.COM.":    "mx.example.com",
		"\xc3\x9cNI.example": "\xc3\x9cni.example",
		"\xffA.example":      "\xffa.example",
		".":                  ".",
	} {
		if got := resolver.NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAndFormatName(t *testing.T) {
	tests := []struct{ text, octets string }{
		{`example.com.`, "example.com"},
		{`a\032b.example`, "a b.example"},
		{`a\ b.example`, "a b.example"},
		{`x\000.example`, "x\x00.example"},
		{`\\\"\(\)\;\@\$.example`, `\"();@$.example`},
		{`\195\156.example`, "\xc3\x9c.example"},
		{`.`, "."},
	}
	for _, tt := range tests {
		got, err := resolver.ParseName(tt.text)
		if err != nil || got != tt.octets {
			t.Errorf("ParseName(%q) = %q, %v; want %q", tt.text, got, err, tt.octets)
		}
		back, err := resolver.ParseName(resolver.FormatName(tt.octets))
		if err != nil || back != tt.octets {
			t.Errorf("ParseName(FormatName(%q)) = %q, %v", tt.octets, back, err)
		}
	}
	for _, bad := range []string{``, `a\.b.example`, `a\256.example`, `a\12`, `a\`} {
		if got, err := resolver.ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzNameOctets: every name of octets survives FormatName, the zone-file
// parser and the wire, and ParseName never panics.
func FuzzNameOctets(f *testing.F) {
	for _, s := range []string{"example.com", "a b.example", "\x00.\xff", `\.\\`, "x\"y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		resolver.ParseName(name)
		rec := resolver.Record{Name: name, Type: resolver.TypeTXT, TTL: 300, TXT: []string{name}}
		if name == "" || len(name) > 200 || len(name) > 0 && (name[0] == '.' || name[len(name)-1] == '.') {
			return
		}
		for _, l := range strings.Split(name, ".") {
			if l == "" || len(l) > 63 {
				return
			}
		}
		back, err := resolver.ParseRecord(rec.String())
		if err != nil {
			t.Fatalf("ParseRecord(%q): %v", rec.String(), err)
		}
		if back.Name != resolver.NormalizeName(name) || len(back.TXT) != 1 || back.TXT[0] != name {
			t.Fatalf("round trip of %q: %+v", name, back)
		}
	})
}
