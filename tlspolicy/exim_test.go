//go:build linux

package tlspolicy

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/testexim"
)

func TestEximReadsocket(t *testing.T) {
	bin := testexim.Binary(t)
	_, addr := startServer(t, testServerEnv())
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	for _, d := range []string{"spool", "log"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	tmpl, err := os.ReadFile("testdata/exim/exim.conf.in")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("@DIR@", dir, "@PORT@", port).Replace(string(tmpl))
	os.WriteFile(filepath.Join(dir, "exim.conf"), []byte(conf), 0o644)
	testexim.WriteUsers(t, dir)

	// transportOption returns the README's expansion of a transport option,
	// with $domain or $host made literal (-be has neither).
	transportOption := func(name, domain, host string) string {
		re := regexp.MustCompile(`(?m)^  ` + name + ` = (.*)$`)
		m := re.FindStringSubmatch(conf)
		if m == nil {
			t.Fatalf("no %s in exim.conf.in", name)
		}
		expr := m[1]
		for _, macro := range []string{"SIDECAR_DANE", "SIDECAR_OCSP", "SIDECAR_POLICY"} {
			def := regexp.MustCompile(`(?m)^` + macro + ` = (.*)$`).FindStringSubmatch(conf)[1]
			expr = strings.ReplaceAll(expr, macro, def)
		}
		expr = strings.ReplaceAll(expr, "SIDECAR_POLICY", "inet:127.0.0.1:"+port)
		expr = strings.ReplaceAll(expr, "$domain", domain)
		expr = strings.ReplaceAll(expr, "$host", host)
		// On stdin, as arguments are limited to 256 octets; Exim answers
		// "> RESULT\n> ".
		out := strings.TrimPrefix(testexim.Run(t, bin, dir, expr+"\n", "-be"), "> ")
		out, _, _ = strings.Cut(out, "\n")
		return out
	}

	tests := []struct {
		domain      string
		route       string // substring of exim -bt
		requireDANE string // expansion of hosts_require_dane
		requireTLS  string // expansion of hosts_require_tls
	}{
		{"dane.example.com", "router = catchall", "*", "*"},    // require
		{"mixed.example.com", "router = catchall", "", ""},     // try
		{"notlsa.example.com", "router = catchall", "", ""},    // none
		{"unusable.example.com", "router = catchall", "", "*"}, // encrypt: TLS mandatory, never "try"
		// defer: the router defers; should the transport's own lookup
		// see it, DANE is required, never skipped (Exim 4.96 takes an
		// expansion error in hosts_require_dane for "not required").
		{"mxfail.example.com", "DANE policy lookup failed", "*", "*"},
		{"bogustlsa.example.com", "DANE policy lookup failed", "*", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			bt := testexim.Run(t, bin, dir, "", "-bt", "user@"+tt.domain)
			if !strings.Contains(bt, tt.route) {
				t.Errorf("exim -bt user@%s:\n%s\nwant %q", tt.domain, bt, tt.route)
			}
			got := transportOption("hosts_require_dane", tt.domain, "")
			if got != tt.requireDANE {
				t.Errorf("hosts_require_dane for %s = %q, want %q", tt.domain, got, tt.requireDANE)
			}
			if tls := transportOption("hosts_require_tls", tt.domain, ""); tls != tt.requireTLS {
				t.Errorf("hosts_require_tls for %s = %q, want %q", tt.domain, tls, tt.requireTLS)
			}
			t.Logf("%s: -bt %q; hosts_require_dane %q", tt.domain, firstLine(bt), got)
		})
	}
	for _, tt := range []struct{ host, require, request string }{
		{"mx1.dane.example.com", "", ""}, // DANE-EE: no OCSP
		{"mx2.example.com", "", "*"},     // DANE-TA only: request
		{"plain.example.com", "", "*"},   // no DANE: request
	} {
		if got := transportOption("hosts_require_ocsp", "", tt.host); got != tt.require {
			t.Errorf("hosts_require_ocsp for %s = %q, want %q", tt.host, got, tt.require)
		}
		if got := transportOption("hosts_request_ocsp", "", tt.host); got != tt.request {
			t.Errorf("hosts_request_ocsp for %s = %q, want %q", tt.host, got, tt.request)
		}
	}
	// The sidecar unreachable: Exim defers rather than skipping DANE.
	conf2 := strings.ReplaceAll(conf, "inet:127.0.0.1:"+port, "inet:127.0.0.1:1")
	os.WriteFile(filepath.Join(dir, "exim.conf"), []byte(conf2), 0o644)
	if bt := testexim.Run(t, bin, dir, "", "-bt", "user@dane.example.com"); !strings.Contains(bt, "DANE policy lookup failed: defer sidecar unreachable") {
		t.Errorf("sidecar down: exim -bt:\n%s", bt)
	}
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan()
	return sc.Text()
}
