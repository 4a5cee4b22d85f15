package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestDaneCommand(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	z := dnstest.NewZone().Add(
		"example.com. 300 IN MX 20 mx2.example.com.",
		"example.com. 300 IN MX 10 mx1.example.com.",
		"mx1.example.com. 300 IN A 192.0.2.1",
		"mx2.example.com. 300 IN A 192.0.2.2",
		"_25._tcp.mx1.example.com. 300 IN TLSA 3 1 1 "+hash,
		"_25._tcp.mx2.example.com. 300 IN TLSA 2 0 1 "+hash,
		"_25._tcp.mx2.example.com. 300 IN TLSA 1 1 1 "+hash,
		"_2525._tcp.mx1.example.com. 300 IN TLSA 3 1 2 "+strings.Repeat("cd", 64),
		"insecure.org. 300 IN MX 10 mx.insecure.org.",
		"mx.insecure.org. 300 IN A 198.51.100.1",
		"fail.example.com. 300 IN MX 10 mx1.example.com.",
	)
	z.SetSecure("example.com", true)
	z.SetFault("fail.example.com", resolver.TypeMX, dnstest.ServFail)
	srv := dnstest.NewServer(t, z)
	conf := filepath.Join(t.TempDir(), "require.conf")
	os.WriteFile(conf, []byte("dane_require_domains = insecure.org\n"), 0o644)

	tests := []struct {
		name string
		args []string
		code int
		want []string // in this order in stdout (or stderr for usage errors)
	}{
		{name: "secure MX, hosts in order", args: []string{"example.com"}, code: 0, want: []string{
			"MX RRset:  secure",
			"host 1:    mx1.example.com (preference 10): dane",
			"TLSA 3 1 1 " + hash + ": usable",
			"host 2:    mx2.example.com (preference 20): dane",
			"TLSA 2 0 1 " + hash + ": usable",
			"TLSA 1 1 1 " + hash + ": unusable: usage 1 (PKIX-EE)",
			"policy:    dane-only (Exim: require)",
			"reason:    secure MX RRset; all 2 MX hosts have usable TLSA records",
			"OCSP:      none (tls_out_tlsa_usage 12)",
		}},
		{name: "-port", args: []string{"-port", "2525", "[mx1.example.com]"}, code: 0, want: []string{
			"next hop:  [mx1.example.com]:2525 (port 2525", "TLSA 3 1 2", "policy:    dane-only"}},
		{name: "[host]:port", args: []string{"[mx2.example.com]:2525"}, code: 0, want: []string{"no-tlsa", "policy:    none"}},
		{name: "insecure", args: []string{"insecure.org"}, code: 0, want: []string{"MX RRset:  insecure", "host 1:    mx.insecure.org (preference 10): insecure", "policy:    none"}},
		{name: "required by -config", args: []string{"-config", conf, "insecure.org"}, code: 0, want: []string{"mode require", "policy:    dane-only", "DANE is required"}},
		{name: "temporary failure", args: []string{"fail.example.com"}, code: 1, want: []string{"MX RRset:  lookup failed: SERVFAIL", "policy:    temp (Exim: defer)", "SERVFAIL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"dane", "-dns", srv.Addr()}, tt.args...)
			code, out, errs := runCmd(args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestDaneMXLookupFailedIsNotSecure guards issue 13 item 9: when the MX
// lookup failed, "sidecar dane" printed "MX RRset: secure
// (DNSSEC-validated)" above the (rightly) temp policy.
func TestDaneMXLookupFailedIsNotSecure(t *testing.T) {
	z := dnstest.NewZone().Add("fail.example.com. 300 IN MX 10 mx.example.com.")
	z.SetSecure("example.com", true)
	for _, f := range []dnstest.Fault{dnstest.ServFail, dnstest.Refused} {
		z.SetFault("fail.example.com", resolver.TypeMX, f)
		srv := dnstest.NewServer(t, z)
		code, out, errs := runCmd("dane", "-dns", srv.Addr(), "fail.example.com")
		if code != 1 || strings.Contains(out, "secure") || !strings.Contains(out, "MX RRset:  lookup failed") {
			t.Errorf("fault %v: exit %d\n%s%s", f, code, out, errs)
		}
	}
}

func TestDaneCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"dane"}, {"dane", "a.example", "b.example"}, {"dane", "[a.example"}, {"dane", "-port", "70000", "a.example"}, {"dane", "-dns", "nowhere", "a.example"}} {
		if code, out, errs := runCmd(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s%s", args, code, out, errs)
		}
	}
}
