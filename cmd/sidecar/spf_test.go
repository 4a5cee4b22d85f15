package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestSPFCommand(t *testing.T) {
	z := dnstest.NewZone().Add(
		`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all exp=why.example.com"`,
		`why.example.com. 300 IN TXT "%{i} may not send mail for %{d}"`,
		`soft.example. 300 IN TXT "v=spf1 ~all"`,
		`perm.example. 300 IN TXT "v=spf1 include:nowhere.example -all"`,
		`mail.helo.example. 300 IN TXT "v=spf1 a -all"`,
		`mail.helo.example. 300 IN A 192.0.2.10`,
		`temp.example. 300 IN TXT "v=spf1 -all"`,
		`nospf.example. 300 IN A 198.51.100.7`,
	)
	z.SetFault("temp.example", resolver.TypeTXT, dnstest.ServFail)
	srv := dnstest.NewServer(t, z)
	guessConf := filepath.Join(t.TempDir(), "guess.conf")
	os.WriteFile(guessConf, []byte("primary_hostname = mx.from-config.example\nspf_guess = a/32 ?all\n"), 0o644)
	badConf := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(badConf, []byte("spf_guess = v=spf1 a/99\n"), 0o644)

	base := []string{"spf", "-dns", srv.Addr(), "-receiver", "mx.example.net", "-helo", "client.example"}
	tests := []struct {
		name string
		args []string
		code int
		want []string // in this order in stdout (stderr for usage errors)
	}{
		{"pass IPv4", []string{"-ip", "192.0.2.7", "-sender", "user@example.com"}, 0, []string{
			"result:       pass\n",
			"identity:     mailfrom user@example.com\n",
			"domain:       example.com\n",
			"mechanism:    ip4:192.0.2.0/24\n",
			"lookups:      0 DNS-querying terms, 0 void\n",
			`Received-SPF: pass (mx.example.net: 192.0.2.7 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)) client-ip=192.0.2.7; envelope-from="user@example.com"; helo=client.example; receiver=mx.example.net; identity=mailfrom; mechanism="ip4:192.0.2.0/24"` + "\n",
		}},
		{"pass IPv6, sender in brackets", []string{"-ip", "2001:db8::7", "-sender", "<user@example.com>"}, 0, []string{
			"result:       pass\n", "mechanism:    ip6:2001:db8::/32\n", `client-ip="2001:db8::7"`,
		}},
		{"fail with explanation", []string{"-ip", "203.0.113.5", "-sender", "user@example.com"}, 1, []string{
			"result:       fail\n",
			"mechanism:    -all\n",
			"explanation:  203.0.113.5 may not send mail for example.com\n",
			"Received-SPF: fail (mx.example.net: 203.0.113.5 is not authorized",
		}},
		{"softfail", []string{"-ip", "203.0.113.5", "-sender", "user@soft.example"}, 1, []string{
			"result:       softfail\n", "mechanism:    ~all\n",
		}},
		{"null sender: HELO identity", []string{"-ip", "192.0.2.10", "-helo", "mail.helo.example", "-sender", "<>"}, 0, []string{
			"result:       pass\n",
			"identity:     helo postmaster@mail.helo.example\n",
			"domain:       mail.helo.example\n",
			"mechanism:    a\n",
			`envelope-from=""; helo=mail.helo.example;`,
			"identity=helo",
		}},
		{"permerror", []string{"-ip", "192.0.2.7", "-sender", "user@perm.example"}, 1, []string{
			"result:       permerror\n", "mechanism:    (none)\n", "problem:      include:nowhere.example: nowhere.example publishes no SPF record", "problem=",
		}},
		{"temperror", []string{"-ip", "192.0.2.7", "-sender", "user@temp.example"}, 1, []string{
			"result:       temperror\n", "problem:      DNS lookup of temp.example TXT failed",
		}},
		{"none", []string{"-ip", "198.51.100.9", "-sender", "user@nospf.example"}, 1, []string{
			"result:       none\n", "problem:      nospf.example publishes no SPF record\n", "Received-SPF: none (",
		}},
		{"guess", []string{"-ip", "198.51.100.9", "-sender", "user@nospf.example", "-guess"}, 0, []string{
			"result:       pass\n", "mechanism:    a/24\n", "guessed:      yes\n",
		}},
		{"guess from -config", []string{"-ip", "198.51.100.9", "-sender", "user@nospf.example", "-guess", "-config", guessConf}, 1, []string{
			"result:       neutral\n", "mechanism:    ?all\n", "guessed:      yes\n", "(mx.example.net: 198.51.100.9 is neither permitted nor denied",
		}},

		{"no -ip", []string{"-sender", "user@example.com"}, 2, []string{"sidecar spf: -ip is required", "usage: sidecar spf -ip IP -helo NAME"}},
		{"bad -ip", []string{"-ip", "192.0.2.300"}, 2, []string{`-ip "192.0.2.300" is not an IP address`}},
		{"no -helo", []string{"-ip", "192.0.2.7", "-helo", ""}, 2, []string{"-helo is required"}},
		{"bad -dns", []string{"-ip", "192.0.2.7", "-dns", "nowhere"}, 2, []string{`-dns: bad DNS server "nowhere"`}},
		{"argument", []string{"-ip", "192.0.2.7", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"unknown flag", []string{"-ip", "192.0.2.7", "-frob"}, 2, []string{"flag provided but not defined: -frob"}},
		{"bad -config", []string{"-ip", "192.0.2.7", "-config", badConf}, 2, []string{"bad.conf:1:13: spf_guess is not a valid SPF record"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string(nil), base...), tt.args...)
			code, out, errs := runCmd(args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n--- stdout\n%s--- stderr\n%s", code, tt.code, out, errs)
			}
			text := out
			if tt.code == 2 {
				text = errs
			}
			rest := text
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("output lacks %q (in this order):\n%s", w, text)
					break
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestSPFCommandReceiverFromConfig(t *testing.T) {
	z := dnstest.NewZone().Add(`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
	srv := dnstest.NewServer(t, z)
	conf := filepath.Join(t.TempDir(), "host.conf")
	os.WriteFile(conf, []byte("primary_hostname = mx.from-config.example\n"), 0o644)
	code, out, errs := runCmd("spf", "-config", conf, "-dns", srv.Addr(), "-ip", "192.0.2.1", "-helo", "c.example", "-sender", "a@example.com")
	if code != 0 || !strings.Contains(out, "receiver=mx.from-config.example;") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}
