package tlspolicy

import (
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestListErrorsAtLoad: the policy options are compiled when the
// configuration is loaded (what check-config runs), not when the daemon
// is built, so their mistakes come with file:line:col and a caret.
func TestListErrorsAtLoad(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"dane_domains = ^[bad", "bad.conf:1:16: dane_domains: bad regular expression \"^[bad\": error parsing regexp: missing closing ]: `[bad`: did you mean \"\\[\" (a literal \"[\")?"},
		{"hostlist mx_hosts = mx.example\nhosts_try_dane = +mx_host", `bad.conf:2:18: hosts_try_dane: no hostlist named "mx_host" is defined: did you mean "+mx_hosts"?`},
		{"dane_domains = exa mple.com", `bad.conf:1:16: dane_domains: domain list item "exa mple.com" is not supported: use a domain, *.suffix, ^regex, @ or +listname`},
		{"hosts_require_ocsp = 192.0.2.1 : 2001:db8::1", `bad.conf:1:39: hosts_require_ocsp: bad IP address "db8:1" (in a colon-separated list, write IPv6 addresses in a list starting with "<;")`},
	} {
		_, err := config.Load("bad.conf", []byte(tc.src))
		errs := config.AsList(err).Errors()
		if len(errs) != 1 || errs[0].Error() != tc.want || errs[0].Source == "" {
			t.Errorf("%q:\n%s\nwant:\n%s", tc.src, errs.Format(), tc.want)
		}
	}
}

// TestRulesCompiledAtLoad: NewEnv uses the rules compiled by the load.
func TestRulesCompiledAtLoad(t *testing.T) {
	cfg, err := config.Load("ok.conf", []byte("dane_disable_domains = x.example\nprimary_hostname = mx.example\ndane_require_domains = @\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := compiledRules(cfg)
	if !ok || !r.DisableDomains.Match("x.example", nil) {
		t.Fatalf("rules not compiled at load: %+v", r)
	}
	env, err := NewEnv(cfg, testZone(), nil)
	if err != nil || env.Decider.Rules() != r {
		t.Errorf("NewEnv compiled the rules again (%v)", err)
	}
	if !r.RequireDomains.Match("MX.example", nil) {
		t.Error(`"@" is not the primary host name`)
	}
}
