package tlsrpt

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testdata/exim-bed.mainlog is Exim 4.96's main log (Debian's
// exim4-daemon-heavy, GnuTLS) from tlspolicy.TestEximDelivery on the
// DNSSEC/MTA-STS test bed, with the README's configuration, and
// exim-bed.policylog the policy socket's lines of the same run.
func eximBedLog(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/exim-bed." + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eximBedSessions are the sessions of testdata/exim-bed.mainlog, in its
// order: TestEximDelivery's cases.
var eximBedSessions = []string{
	// DANE match: CV=dane.
	"example.test mail.example.test 127.0.0.25 Verified  ",
	// DANE mismatch: GnuTLS's DANE text.
	"example.test mail.example.test 127.0.0.25  tlsa-invalid TLS session: (certificate verification failed): Verification failed. The certificate differs.",
	// The policy socket unreachable: no session. Then the DNS failures,
	// deferred by the first router.
	"tampered.example.test    dnssec-invalid DANE policy lookup failed: defer lookups failed for every MX host (tampered.example.test: address lookup failed: SERVFAIL (server failure or DNSSEC-bogus answer)); deferring, never downgrading",
	"bogus.example.test    dnssec-invalid DANE policy lookup failed: defer MX lookup for bogus.example.test failed: SERVFAIL (server failure or DNSSEC-bogus answer); deferring, never downgrading",
	"dead.example.test    dnssec-invalid DANE policy lookup failed: defer MX lookup for dead.example.test failed: timeout; deferring, never downgrading",
	// MTA-STS match: CV=yes; a certificate for another name.
	"sts.example.test mx-notlsa.example.test 127.0.0.29 Verified  ",
	"sts.example.test mx-notlsa.example.test 127.0.0.29  certificate-host-mismatch TLS session: (certificate verification failed)",
	`stsnomatch.example.test    validation-failure MTA-STS policy: no MX host matches <;!^mx\.other\.example\.test$;!^[^.]+\.mx-notlsa\.example\.test$;*`,
	// OCSP: not required, required and good, none stapled, revoked.
	"sts.example.test mx-notlsa.example.test 127.0.0.29 Verified  ",
	"sts.example.test mx-notlsa.example.test 127.0.0.29 Verified  ",
	"sts.example.test mx-notlsa.example.test 127.0.0.29  validation-failure TLS session: (certificate status check failed)",
	"sts.example.test mx-notlsa.example.test 127.0.0.29  validation-failure TLS session: (certificate verification failed): certificate revoked",
}

func readEximSessions(t testing.TB, log string) []string {
	t.Helper()
	var got []string
	ref := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	ex := newEximReader(time.UTC, func(s Session) { got = append(got, s.testString()) })
	err := forEachLine(strings.NewReader(log), func(b []byte) {
		line := string(b)
		if tm, prog, _, msg, ok := syslogPrefix(line, ref); ok && prog == "exim" {
			ex.syslogLine(tm, msg)
		} else if !ok {
			ex.logLine(line)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// eachLine applies f to each line of log.
func eachLine(log string, f func(string) string) string {
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	for i, l := range lines {
		lines[i] = f(l)
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestEximSessions: Exim's main log lines from the real runs, as Exim
// writes them to its own file and as they come through syslog, give the
// sessions of the deliveries with their RFC 8460 result types.
func TestEximSessions(t *testing.T) {
	bed := eximBedLog(t, "mainlog")
	lineOf := func(sub string) string { return linesWith(bed, sub)[0] + "\n" }
	daneMismatch := lineOf("== rcpt@example.test R=dnslookup")
	tests := []struct {
		name string
		log  string
		want []string
	}{
		{"test bed main log", bed, eximBedSessions},
		{"through syslog, with Exim's timestamps (syslog_timestamp)", eachLine(bed, func(l string) string {
			return "Dec  4 18:18:52 client exim[16843]: " + l
		}), eximBedSessions},
		{"through syslog, without them", eachLine(bed, func(l string) string {
			if _, msg, ok := eximTimestamp(l, time.UTC); ok {
				l = msg
			}
			return "2026-12-04T18:18:52.000000+00:00 client exim[16843]: " + l
		}), eximBedSessions},
		{"+millisec, log_timezone, +pid", eachLine(bed, func(l string) string {
			if len(l) > 19 && l[4] == '-' {
				l = l[:19] + ".123 +0100 [16843]" + l[19:]
			}
			return l
		}), eximBedSessions},
		{"a plaintext delivery is no session",
			strings.Replace(lineOf("=> rcpt@sts.example.test"), " X=TLS1.3:ECDHE_X25519__ECDSA_SECP256R1_SHA256__AES_128_GCM:128 CV=yes", "", 1), nil},
		{"CV=no: TLS without a verified certificate",
			strings.Replace(lineOf("=> rcpt@sts.example.test"), "CV=yes", "CV=no", 1),
			[]string{"sts.example.test mx-notlsa.example.test 127.0.0.29 Untrusted  "}},
		{"-> lines, more recipients of the transaction, count once",
			lineOf("=> rcpt@sts.example.test") + strings.Replace(lineOf("=> rcpt@sts.example.test"), "=> rcpt@", "-> other@", 1),
			[]string{"sts.example.test mx-notlsa.example.test 127.0.0.29 Verified  "}},
		{"two recipients of one attempt deferred count once; a retry counts again",
			daneMismatch + strings.Replace(daneMismatch, "== rcpt@", "== other@", 1) +
				daneMismatch[:11] + "23:59:59" + daneMismatch[19:], // the bed's run was earlier that day
			[]string{eximBedSessions[1], eximBedSessions[1]}},
		{"DANE attempt failed names the attempt: a bare verification failure is tlsa-invalid",
			lineOf("DANE attempt failed") + strings.Replace(daneMismatch, ": Verification failed. The certificate differs. ", "", 1),
			[]string{"example.test mail.example.test 127.0.0.25  tlsa-invalid TLS session: (certificate verification failed)"}},
		{"the policy socket unreachable is no session", lineOf("sidecar unreachable"), nil},
		{"not Exim", "2026-12-04 18:18:52 not a message id\n2026-12-04 nonsense\n2026-12-04 18:18:52 1xZXrw-0004J6-2L => \n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameLines(t, "sessions", readEximSessions(t, tt.log), tt.want)
		})
	}
}

// TestEximTimestamp: Exim's timestamp forms.
func TestEximTimestamp(t *testing.T) {
	for _, tt := range []struct{ line, want, msg string }{
		{"2026-12-04 18:18:52 1xZXrw-0004J6-2L Completed", "2026-12-04T18:18:52Z", "1xZXrw-0004J6-2L Completed"},
		{"2026-12-04 18:18:52.123 +0100 [16843] 1xZXrw-0004J6-2L Completed", "2026-12-04T17:18:52.123Z", "1xZXrw-0004J6-2L Completed"},
		{"2026-12-04 18:18:52 [16843] x", "2026-12-04T18:18:52Z", "x"},
	} {
		tm, msg, ok := eximTimestamp(tt.line, time.UTC)
		if got := tm.UTC().Format(time.RFC3339Nano); !ok || got != tt.want || msg != tt.msg {
			t.Errorf("%q: %v %s %q, want %s %q", tt.line, ok, got, msg, tt.want, tt.msg)
		}
	}
	for _, bad := range []string{"", "2026-12-04", "2026-13-04 18:18:52 x", "Dec  4 18:18:52 host exim[1]: x"} {
		if _, _, ok := eximTimestamp(bad, time.UTC); ok {
			t.Errorf("%q read as an Exim timestamp", bad)
		}
	}
}

// TestEximBedReport: the bed's Exim log and policy log make the reports
// the deliveries call for: each domain under the policy the socket
// answered, the sessions counted as they happened.
func TestEximBedReport(t *testing.T) {
	a := &Aggregator{Ref: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Local: time.UTC}
	for _, name := range []string{"policylog", "mainlog"} {
		if err := a.Read(strings.NewReader(eximBedLog(t, name))); err != nil {
			t.Fatal(err)
		}
	}
	reports := a.Reports(Reporter{OrgName: "o", Contact: "c", Domain: "example.net"})
	for _, r := range reports {
		doc, err := r.JSON()
		if err == nil {
			_, err = checkSchema(doc)
		}
		if err != nil {
			t.Errorf("%s: %v", r.FileName(), err)
		}
	}
	got := reportSummaries(reports)
	want := []string{
		"bogus.example.test no-policy-found 0/1 dnssec-invalid@/",
		"dead.example.test no-policy-found 0/1 dnssec-invalid@/",
		"example.test tlsa 1/1 tlsa-invalid@mail.example.test/127.0.0.25",
		"sts.example.test sts 3/3 certificate-host-mismatch@mx-notlsa.example.test/127.0.0.29,validation-failure@mx-notlsa.example.test/127.0.0.29,validation-failure@mx-notlsa.example.test/127.0.0.29",
		"stsnomatch.example.test sts 0/1 validation-failure@/",
		"tampered.example.test no-policy-found 0/1 dnssec-invalid@/",
	}
	sameLines(t, "reports", got, want)
}

// sameLines reports got unless it is want, line for line.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("%s:\n%s\nwant:\n%s", what, g, w)
	}
}

// reportSummaries is "domain type successes/failures result@mx/ip,…"
// for each policy of each report.
func reportSummaries(reports []*Report) []string {
	var out []string
	for _, r := range reports {
		for _, p := range r.Policies {
			var fails []string
			for _, fd := range p.FailureDetails {
				fails = append(fails, string(fd.ResultType)+"@"+fd.ReceivingMXHostname+"/"+fd.ReceivingIP)
			}
			out = append(out, p.Policy.Domain+" "+string(p.Policy.Type)+" "+
				strconv.FormatInt(p.Summary.Successful, 10)+"/"+strconv.FormatInt(p.Summary.Failure, 10)+" "+strings.Join(fails, ","))
		}
	}
	return out
}

// linesWith are the lines of s containing sub.
func linesWith(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = append(out, "")
	}
	return out
}
