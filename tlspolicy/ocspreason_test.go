package tlspolicy

import (
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestOCSPReasonAndWarnings: "ocsp HOST" answers give the OCSP reason
// (which list matched; DANE-EE only; TLS not mandatory), not the DANE one;
// check-config warns, at hosts_require_ocsp, that DANE-EE hosts seldom
// staple and that the requirement holds only over TLS.
func TestOCSPReasonAndWarnings(t *testing.T) {
	src := "hosts_require_ocsp = mx1.dane.example.com : plain.example.com\n"
	cfg, err := config.Load("ocsp.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rules, ok := compiledRules(cfg)
	if !ok {
		t.Fatal("rules not compiled at load")
	}
	warnings := cfg.Reporter.List.Warnings().Format()
	for _, want := range []string{
		"ocsp.conf:1:22: warning: hosts_require_ocsp covers hosts that may use DANE: those with DANE-EE (usage 3) records only seldom staple OCSP",
		"ocsp.conf:1:22: warning: hosts_require_ocsp holds only once TLS is up",
		"^",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if cfg2, _ := config.Load("none.conf", []byte("dane_domains = *\n")); len(cfg2.Reporter.List.Warnings()) != 0 {
		t.Errorf("warnings without hosts_require_ocsp: %s", cfg2.Reporter.List.Warnings().Format())
	}

	env := TestEnv(testZone(), rules)
	_, addr := startServer(t, env)
	expectReplies(t, addr, []reqReply{
		{"ocsp mx1.dane.example.com\n", "require hosts_require_ocsp matches [mx1.dane.example.com]: the server must staple a valid OCSP response; but it has DANE-EE records only"},
		{"ocsp plain.example.com\n", "require hosts_require_ocsp matches [plain.example.com]: the server must staple a valid OCSP response; TLS is not mandatory for it (policy none)"},
		{"ocsp mx2.example.com\n", "request hosts_request_ocsp matches [mx2.example.com]: a stapled OCSP response is asked for"},
	})
	env2 := TestEnv(testZone(), nil)
	_, addr2 := startServer(t, env2)
	expectReplies(t, addr2, []reqReply{
		{"ocsp mx1.dane.example.com\n", "none [mx1.dane.example.com] uses DANE-EE (TLSA usage bits 8): OCSP is not requested"},
	})
}
