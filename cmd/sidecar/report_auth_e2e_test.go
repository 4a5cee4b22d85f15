package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/resolver"
)

// saslPostfix starts a private Postfix that takes mail for rua.example
// only from clients that authenticated (Cyrus SASL, PLAIN and LOGIN,
// against a sasldb of its own holding user with password), delivering it
// into maildirs under the returned base.
func saslPostfix(t *testing.T, user, password string) *testmta.Maildirs {
	t.Helper()
	testmta.NeedPostfix(t, "SMTP AUTH")
	if _, err := exec.LookPath("saslpasswd2"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("saslpasswd2 not installed (Debian package sasl2-bin)")
		}
		t.Skip("saslpasswd2 not installed (Debian package sasl2-bin)")
	}
	dir, err := os.MkdirTemp("", "sidecar-sasl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // smtpd runs as postfix
	db := filepath.Join(dir, "sasldb2")
	name, realm, _ := strings.Cut(user, "@")
	cmd := exec.Command("saslpasswd2", "-c", "-p", "-f", db, "-u", realm, name)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v\n%s", err, out)
	}
	os.Chmod(db, 0o644)
	// Debian's Postfix reads the Cyrus configuration from the sasl
	// directory under its own (cyrus_sasl_config_path is not heeded).
	conf := "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: " + db + "\nmech_list: PLAIN LOGIN\n"
	return testmta.StartMaildirsConfig(t, "rua.example", []string{"rua.example"}, map[string]string{"reports@rua.example": "rua/"},
		testmta.Config{Files: map[string]string{"sasl/smtpd.conf": conf}, Main: []string{
			"smtpd_sasl_auth_enable = yes",
			"smtpd_sasl_type = cyrus",
			"smtpd_sasl_path = smtpd",
			"smtpd_sasl_security_options = noanonymous",
			"mynetworks = 192.0.2.1/32",
			"smtpd_relay_restrictions = permit_sasl_authenticated, reject"}})
}

// TestReportSendAuth: report_smtp_user and report_smtp_password_file get
// the aggregate report through a Postfix that relays only for clients
// that authenticate. With a wrong password the delivery is temporary (a
// configuration to mend, not a report to give up), and the run after the
// mend sends it.
func TestReportSendAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postfix")
	}
	mds := saslPostfix(t, "reporter@rua.example", "correct horse")
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	spec := historygen.Spec{Records: 40, Domains: 1, Sources: 2, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	var hist []byte
	for i := 0; i < spec.Records; i++ {
		r := spec.Record(i)
		r.RUA = []string{"mailto:reports@rua.example"}
		hist = r.AppendFormat(hist)
	}
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	zone := dnstest.NewZone()
	zone.AddRecord(resolver.Record{Name: "d0.example._report._dmarc.rua.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1"}})
	dns := dnstest.NewServer(t, zone)
	base := "report_smtp = " + mds.Addr + "\nreport_email = dmarc-reports@mx.example.net\ndns_servers = " + dns.Addr() + "\n"
	conf, histPath, _ := reportSetup(t, historygen.Spec{}, base)
	if err := os.WriteFile(histPath, hist, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd("report", "import", "-config", conf); code != 0 {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	rewrite := func(extra string) {
		text, _ := os.ReadFile(conf)
		text = []byte(string(text[:strings.Index(string(text), "report_smtp =")]) + base + extra)
		if err := os.WriteFile(conf, text, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		name, extra, password, want string
		code                        int
	}{
		{"wrong password", "report_smtp_user = reporter@rua.example\nreport_smtp_password_file = " + pwFile + "\n", "battery staple\n",
			"d0.example mailto:reports@rua.example: temporary: temporary failure: SMTP AUTH: 535 5.7.8", 1},
		{"right password", "report_smtp_user = reporter@rua.example\nreport_smtp_password_file = " + pwFile + "\n", "correct horse\n",
			"d0.example mailto:reports@rua.example: sent", 0},
	} {
		if step.password != "" {
			if err := os.WriteFile(pwFile, []byte(step.password), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		rewrite(step.extra)
		code, out, errs := runCmd("report", "aggregate", "-config", conf, "-send")
		if code != step.code || !strings.Contains(out+errs, step.want) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s%s", step.name, code, step.code, step.want, out, errs)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var files []string
	for len(files) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		files, _ = filepath.Glob(filepath.Join(mds.Base, "rua", "new", "*"))
	}
	if len(files) != 1 {
		t.Fatalf("rua maildir: %d mails, want 1", len(files))
	}
	raw, _ := os.ReadFile(files[0])
	if !strings.Contains(string(raw), "\nReport-Domain: d0.example\n") {
		t.Errorf("report mail:\n%s", raw)
	}
	if log := mds.Log(); !strings.Contains(log, "sasl_method=PLAIN, sasl_username=reporter@rua.example") {
		t.Errorf("Postfix did not log the authenticated client:\n%s", log)
	}
}
