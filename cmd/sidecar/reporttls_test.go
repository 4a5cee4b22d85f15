package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// TestReportTLSSend: sidecar report tls -send finds the rua through
// dns_servers, mails the report to report_smtp, and a second run over the
// same period sends nothing; a domain without a record is said so once.
func TestReportTLSSend(t *testing.T) {
	z := dnstest.NewZone().Add(`_smtp._tls.mail.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@mail.example"`)
	srv := dnstest.NewServer(t, z)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := testmta.ServeSink(t, l, testmta.SinkOptions{})
	dir := t.TempDir()
	conf := filepath.Join(dir, "sidecar.conf")
	os.WriteFile(conf, []byte("primary_hostname = reporter.example\ndns_servers = "+srv.Addr()+"\nreport_smtp = "+sink.Addr()+
		"\ntls_report_state_file = "+filepath.Join(dir, "state.json")+"\n"), 0o644)
	logFile := filepath.Join(dir, "mail.log")
	os.WriteFile(logFile, []byte(`2025-12-03T10:00:00Z client postfix/smtp[1]: Verified TLS connection established to mx.mail.example[192.0.2.1]:25: TLSv1.3
2025-12-03T10:00:00Z client postfix/smtp[1]: 1A: to=<a@mail.example>, relay=mx.mail.example[192.0.2.1]:25, status=sent (250 ok)
2025-12-03T11:00:00Z client postfix/smtp[2]: Verified TLS connection established to mx.none.example[192.0.2.2]:25: TLSv1.3
2025-12-03T11:00:00Z client postfix/smtp[2]: 1B: to=<b@none.example>, relay=mx.none.example[192.0.2.2]:25, status=sent (250 ok)
`), 0o644)
	args := []string{"report", "tls", "-config", conf, "-send", "-begin", "2025-12-03T06:00:00Z", "-end", "2025-12-04T00:00:00Z", logFile}
	code, out, errOut := runCmd(args...)
	want := "reporter.example!mail.example!1764720000!1764806399.json.gz sent mailto:tlsrpt@mail.example\n" +
		"reporter.example!none.example!1764720000!1764806399.json.gz no-record: _smtp._tls.none.example: no TLSRPT record: 0 records begin with v=TLSRPTv1\n"
	if code != 0 || out != want {
		t.Fatalf("first run: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	select {
	case m := <-sink.Msgs:
		for _, s := range []string{"From: postmaster@reporter.example", "TLS-Report-Domain: mail.example", "report-type=tlsrpt", "application/tlsrpt+gzip"} {
			if !strings.Contains(m, s) {
				t.Errorf("report mail without %q:\n%s", s, m)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report mail")
	}
	code, out, errOut = runCmd(args...)
	if code != 0 || strings.Count(out, " skipped") != 2 || strings.Contains(out, " sent") {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errOut)
	}
	select {
	case m := <-sink.Msgs:
		t.Fatalf("second run sent again:\n%s", m)
	case <-time.After(100 * time.Millisecond):
	}
	if code, _, errOut := runCmd("report", "tls", "-send", "-out", dir, logFile); code != 2 || !strings.Contains(errOut, "exclude") {
		t.Errorf("-send -out: exit %d, %s", code, errOut)
	}
}

// TestReportTLSExim: sidecar report tls reads Exim's main log, recognized
// by its format, beside the policy log: the main log and policy lines of
// tlspolicy.TestEximDelivery's run give a report for each domain its
// deliveries went to (or were deferred for).
func TestReportTLSExim(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "sidecar.conf")
	os.WriteFile(conf, []byte("primary_hostname = reporter.example\n"), 0o644)
	td := "../../report/tlsrpt/testdata/"
	code, out, errOut := runCmd("report", "tls", "-config", conf, "-out", dir, "-begin", "2026-12-03", "-end", "2026-12-06",
		td+"exim-bed.policylog", td+"exim-bed.mainlog")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	domains := map[string]bool{}
	for _, f := range strings.Fields(out) {
		// DIR/SENDER!DOMAIN!BEGIN!END.json.gz
		if parts := strings.Split(filepath.Base(f), "!"); len(parts) == 4 {
			domains[parts[1]] = true
		}
	}
	for _, d := range []string{"example.test", "sts.example.test", "stsnomatch.example.test", "tampered.example.test", "bogus.example.test", "dead.example.test"} {
		if !domains[d] {
			t.Errorf("no report for %s:\n%s", d, out)
		}
	}
	if len(domains) != 6 {
		t.Errorf("reports for %v, want 6 domains", domains)
	}
}
