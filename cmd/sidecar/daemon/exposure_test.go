package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestExposureWarnings guards issue 13 items 5 and 8: a socket bound beyond
// loopback with no real allow-list, a non-loopback dns_servers (which
// silently turns DANE into none) and dns_trust_ad = 0.0.0.0/0 loaded
// without a word. Each is now a warning at the offending item.
func TestExposureWarnings(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string // "line:col: start of the message"
	}{
		{"defaults", "", nil},
		{"loopback listeners", "milter_listen = inet:127.0.0.1:8894 unix:/tmp/m.sock\npolicy_listen = inet:[::1]:8895\n", nil},
		{"milter open to all",
			"milter_listen = inet:127.0.0.1:9 inet:0.0.0.0:8894\nmilter_allow = <; 0.0.0.0/0 ; ::1\n",
			[]string{"1:34: milter_listen binds 0.0.0.0:8894 beyond loopback and milter_allow admits the Internet at large"}},
		{"policy open to all",
			"policy_listen = inet:8895@192.0.2.1\npolicy_allow = <; ::/0\n",
			[]string{"1:17: policy_listen binds 192.0.2.1:8895 beyond loopback and policy_allow admits the Internet at large"}},
		{"beyond loopback, allow-list of the site", "milter_listen = inet:0.0.0.0:8894\nmilter_allow = 10.0.0.0/8\n", nil},
		{"beyond loopback, loopback allow-list",
			"milter_listen = inet:0.0.0.0:8894\n",
			[]string{"1:17: milter_listen binds 0.0.0.0:8894 beyond loopback, but milter_allow admits loopback addresses only"}},
		{"remote DNS server",
			"dns_servers = 127.0.0.1 192.0.2.53\n",
			[]string{"1:25: DNS server 192.0.2.53:53 is not in dns_trust_ad: its answers are never DNSSEC-secure, so DANE is off"}},
		{"remote DNS server, no policy socket", "dns_servers = 192.0.2.53\npolicy_listen =\n", nil},
		{"trust AD from anywhere",
			"dns_trust_ad = <; ::1 ; 0.0.0.0/0\n",
			[]string{"1:25: dns_trust_ad trusts the AD bit of resolvers anywhere (0.0.0.0/0)"}},
		{"trust AD from a LAN resolver",
			"dns_servers = 10.0.0.53\ndns_trust_ad = 10.0.0.53\n",
			[]string{"2:16: dns_trust_ad trusts the AD bit of resolvers beyond loopback (10.0.0.53)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.conf")
			os.WriteFile(path, []byte(tc.conf), 0o644)
			cfg, _, err := Load(path, registry())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var got []string
			for _, w := range cfg.Reporter.List.Warnings() {
				got = append(got, w.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], path+":"+w) {
					t.Errorf("warning %d:\n got %s\nwant %s:%s…", i, got[i], path, w)
				}
			}
		})
	}
}

// TestUntrustedResolvConfLogged: with dns_servers unset, servers from
// /etc/resolv.conf that dns_trust_ad does not trust are logged at start.
func TestUntrustedResolvConfLogged(t *testing.T) {
	cfg, err := config.Load("t.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logUntrustedResolvConf(cfg, []string{"127.0.0.53:53", "192.0.2.53:53"}, slog.New(slog.NewTextHandler(&buf, nil)))
	if out := buf.String(); strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "192.0.2.53:53 is not in dns_trust_ad") {
		t.Errorf("log:\n%s", out)
	}
}
