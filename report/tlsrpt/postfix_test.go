package tlsrpt

import (
	"strings"
	"testing"
	"time"
)

// The lines below are from Postfix 3.7 on the DANE test bed
// (tlspolicy.TestPostfixDANE, smtp_tls_loglevel = 1, maillog_file).
const bedDANE = `Dec 04 17:45:57 client postfix/smtp[10276]: Verified TLS connection established to mail.example.test[127.0.0.25]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 17:45:57 client postfix/smtp[10276]: 6A48098C2D5: to=<rcpt@example.test>, relay=mail.example.test[127.0.0.25]:25, delay=0.23, delays=0.01/0.07/0.14/0, dsn=2.0.0, status=sent (250 2.0.0 queued)
Dec 04 17:45:57 client postfix/smtp[10276]: server certificate verification failed for mail.example.test[127.0.0.25]:25: num=65:no matching DANE TLSA records
Dec 04 17:45:57 client postfix/smtp[10276]: Untrusted TLS connection established to mail.example.test[127.0.0.25]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 17:45:57 client postfix/smtp[10276]: AD01398C2E4: to=<rcpt@example.test>, relay=mail.example.test[127.0.0.25]:25, delay=0.02, delays=0.01/0.01/0/0, dsn=4.7.5, status=deferred (Server certificate not verified)
`

// From the same bed (tlspolicy.TestPostfixTLSReport): MTA-STS enforce,
// Postfix "secure match=mx-notlsa.example.test", a CA-signed certificate
// for the MX host, then one for another name.
const bedSTS = `Dec 04 17:52:25 client postfix/smtp[25680]: Verified TLS connection established to mx-notlsa.example.test[127.0.0.29]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 17:52:25 client postfix/smtp[25680]: 6A1B98A27D: to=<rcpt@sts.example.test>, relay=mx-notlsa.example.test[127.0.0.29]:25, delay=0.3, delays=0.2/0/0.04/0, dsn=2.0.0, status=sent (250 2.0.0 queued)
Dec 04 17:52:26 client postfix/smtp[25680]: server certificate verification failed for mx-notlsa.example.test[127.0.0.29]:25: num=62:hostname mismatch
Dec 04 17:52:26 client postfix/smtp[25680]: Untrusted TLS connection established to mx-notlsa.example.test[127.0.0.29]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Dec 04 17:52:26 client postfix/smtp[25680]: 89D1B98A281: to=<rcpt@sts.example.test>, relay=mx-notlsa.example.test[127.0.0.29]:25, delay=0.08, delays=0.08/0/0/0, dsn=4.7.5, status=deferred (Server certificate not verified)
`

func readSessions(t *testing.T, log string) []Session {
	t.Helper()
	var got []Session
	pf := newPostfixReader(func(s Session) { got = append(got, s) })
	ref := time.Date(2025, 12, 4, 18, 0, 0, 0, time.UTC)
	err := forEachLine(strings.NewReader(log), func(b []byte) {
		if tm, prog, pid, msg, ok := syslogPrefix(string(b), ref); ok && strings.HasSuffix(prog, "/smtp") {
			pf.line(tm, pid, msg)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestPostfixSessions: each table entry is a piece of a Postfix mail log
// and the sessions it must give, as "domain mx ip level result reason".
func TestPostfixSessions(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []string
	}{
		{"test bed: DANE verified, then TLSA mismatch", bedDANE, []string{
			"example.test mail.example.test 127.0.0.25 Verified  ",
			"example.test mail.example.test 127.0.0.25 Untrusted tlsa-invalid no matching DANE TLSA records",
		}},
		{"test bed: MTA-STS verified, then a certificate for another name", bedSTS, []string{
			"sts.example.test mx-notlsa.example.test 127.0.0.29 Verified  ",
			"sts.example.test mx-notlsa.example.test 127.0.0.29 Untrusted certificate-host-mismatch hostname mismatch",
		}},
		{"two recipients in one session count once",
			"2025-12-04T10:00:00.000000+00:00 mx postfix/smtp[7]: Trusted TLS connection established to mx.example.org[192.0.2.1]:25: TLSv1.3\n" +
				"2025-12-04T10:00:01.000000+00:00 mx postfix/smtp[7]: 1A: to=<a@example.org>, relay=mx.example.org[192.0.2.1]:25, status=sent (250 ok)\n" +
				"2025-12-04T10:00:01.000000+00:00 mx postfix/smtp[7]: 1A: to=<b@example.org>, relay=mx.example.org[192.0.2.1]:25, status=sent (250 ok)\n",
			[]string{"example.org mx.example.org 192.0.2.1 Trusted  "}},
		{"STARTTLS not offered",
			"Dec  4 10:00:00 mx postfix/smtp[8]: 2B: to=<a@example.net>, relay=mx.example.net[192.0.2.2]:25, delay=1, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host mx.example.net[192.0.2.2])\n",
			[]string{"example.net mx.example.net 192.0.2.2  starttls-not-supported TLS is required, but was not offered by host mx.example.net[192.0.2.2]"}},
		{"hostname mismatch under secure",
			"Dec  4 10:00:00 mx postfix/smtp[9]: server certificate verification failed for mx.example.com[192.0.2.3]:25: num=62:hostname mismatch\n" +
				"Dec  4 10:00:00 mx postfix/smtp[9]: 3C: to=<a@example.com>, relay=mx.example.com[192.0.2.3]:25, status=deferred (Server certificate not verified)\n",
			[]string{"example.com mx.example.com 192.0.2.3  certificate-host-mismatch hostname mismatch"}},
		{"TLSA lookup error",
			"Dec  4 10:00:00 mx postfix/smtp[10]: warning: TLS policy lookup for example.com/mx.example.com: TLSA lookup error for mx.example.com:25\n" +
				"Dec  4 10:00:00 mx postfix/smtp[10]: 4D: to=<a@example.com>, relay=none, delay=1, status=deferred (TLSA lookup error for mx.example.com:25)\n",
			[]string{"example.com mx.example.com   dnssec-invalid TLSA lookup error for mx.example.com:25"}},
		{"plaintext delivery is no TLS session",
			"Dec  4 10:00:00 mx postfix/smtp[11]: 5E: to=<a@example.com>, relay=mx.example.com[192.0.2.3]:25, status=sent (250 ok)\n", nil},
		{"garbage", "Dec  4 10:00:00 mx postfix/smtp[12]: server certificate verification failed for \nnot a log line\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range readSessions(t, tt.log) {
				got = append(got, s.testString())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("sessions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// testString is "domain mx ip level result reason".
func (s Session) testString() string {
	return strings.Join([]string{s.Domain, s.MXHost, s.IP, s.Level, string(s.Result), s.Reason}, " ")
}

// TestPolicyLines: the policy socket's lines in slog's text and JSON
// formats, alone or after a syslog prefix.
func TestPolicyLines(t *testing.T) {
	fb := time.Date(2025, 12, 4, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, line string
		want       string // "domain type strings|mx time"
	}{
		{"text, tlsa", `time=2025-12-04T17:45:57.1Z level=INFO msg=policy proto=socketmap client=127.0.0.1:4 nexthop=example.test policy=dane-only ocsp=none tlsa_usage=8 type=tlsa tlsa="3 1 1 ab,3 1 1 cd" reason="usable TLSA"`,
			"example.test tlsa 3 1 1 ab;3 1 1 cd| 2025-12-04T17:45:57Z"},
		{"syslog + text, sts", `Dec  4 10:00:00 mx sidecar[5]: time=2025-12-04T10:00:00Z level=INFO msg=policy proto=tcp nexthop=sts.example.test:25 policy=secure type=sts sts_id=1 sts_mode=enforce sts_mx=mx.example.test,*.mx.example.test sts_max_age=86400 reason=x`,
			"sts.example.test sts version: STSv1;mode: enforce;mx: mx.example.test;mx: *.mx.example.test;max_age: 86400|mx.example.test;*.mx.example.test 2025-12-04T10:00:00Z"},
		{"json, none", `{"time":"2025-12-04T11:00:00Z","level":"INFO","msg":"policy","nexthop":"notlsa.example.test","policy":"none","type":"no-policy-found","tlsa_usage":0}`,
			"notlsa.example.test no-policy-found | 2025-12-04T11:00:00Z"},
		{"[host] next hop", `level=INFO msg=policy nexthop=[mx.example.test] type=tlsa tlsa=x`, ""},
		{"other line", `level=INFO msg=ready`, ""},
		{"unknown type", `level=INFO msg=policy nexthop=a.example type=weird`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, ok := parsePolicyLine(tt.line, fb)
			got := ""
			if ok {
				got = pl.Domain + " " + string(pl.Type) + " " + strings.Join(pl.Strings, ";") + "|" + strings.Join(pl.MXHost, ";") + " " + pl.Time.UTC().Format(time.RFC3339)
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestLongLinesSkipped: a line longer than MaxLine is passed over whole,
// the next ones still read.
func TestLongLinesSkipped(t *testing.T) {
	log := strings.Repeat("x", 3*MaxLine) + "\n" + bedDANE
	if got := readSessions(t, log); len(got) != 2 {
		t.Errorf("%d sessions after a long line, want 2", len(got))
	}
}

// TestPolicyLineSTSResult: a failed MTA-STS fetch keeps its result type;
// a line without sts_result (before it was logged) or with an unknown one
// is a fetch error.
func TestPolicyLineSTSResult(t *testing.T) {
	for _, tt := range []struct{ attrs, want string }{
		{`sts_error="fetch failed (PKIX validation failed)" sts_result=sts-webpki-invalid`, "sts-webpki-invalid"},
		{`sts_error="fetch failed (invalid policy)" sts_result=sts-policy-invalid`, "sts-policy-invalid"},
		{`sts_error="lookup failed"`, "sts-policy-fetch-error"},
		{`sts_error=x sts_result=tlsa-invalid`, "sts-policy-fetch-error"},
		{`sts_result=sts-webpki-invalid`, ""},
	} {
		pl, ok := parsePolicyLine("level=INFO msg=policy nexthop=a.example type=no-policy-found "+tt.attrs, time.Time{})
		if !ok || string(pl.STSResult) != tt.want {
			t.Errorf("%s: %v %q, want %q", tt.attrs, ok, pl.STSResult, tt.want)
		}
	}
}
