package checks

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/report/forensic"
)

func forensicZone() *dnstest.Zone {
	z := dmarcZone()
	for _, d := range []string{"ruf.example", "fod.example"} {
		addTXT(z, d, "v=spf1 ip4:192.0.2.0/24 -all")
		z.Add(d + ". 300 IN A 192.0.2.1")
	}
	addTXT(z, "_dmarc.ruf.example", "v=DMARC1; p=reject; ruf=mailto:ruf@ruf.example,mailto:ruf@reports.example!1m; fo=1")
	addTXT(z, "_dmarc.fod.example", "v=DMARC1; p=none; ruf=mailto:ruf@fod.example; fo=d")
	return z
}

// forensicACL asks for failure reports at RCPT and refuses DMARC rejects.
const forensicACL = `acl_smtp_rcpt = rcpt
acl_smtp_data = data
begin acl
rcpt:
  warn    senders = !*@noreport.example
          control = dmarc_enable_forensic
  accept
data:
  deny    dmarc_status = reject
          message = DMARC says reject
  accept
`

func forensicSpool(t *testing.T, dir string) []*forensic.Entry {
	t.Helper()
	s, err := forensic.OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.IDs()
	if err != nil {
		t.Fatal(err)
	}
	var out []*forensic.Entry
	for _, id := range ids {
		e, err := s.Load(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestFailureReportSpooled: a message failing DMARC, from a domain whose
// record has fo=1 and ruf=, with the control set, leaves one spooled
// report whose mail is ARF with the message's header; dmarc_forensic_sender
// is expanded for the message. A passing message, one without the
// control, and a message of a domain with fo=d and no failing signature
// leave none.
func TestFailureReportSpooled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	p := load(t, "dmarc_forensic_spool = "+dir+"\ndmarc_forensic_sender = dmarc-${lc:$dmarc_used_domain}@mx.example.net\n"+forensicACL)
	svc := svcFor(forensicZone())
	send := func(queue, ip, sender, from string) acl.Result {
		res, _ := deliver(t, p, svc, delivery{ip: ip, helo: "client.example", sender: sender, queueID: queue,
			rcpts: []string{"bob@example.org"}, msg: plainMessage(from, 100)})
		return res
	}
	if res := send("Q1", "203.0.113.9", "spoofer@bad.example", "alice@RUF.example"); res.Verb != acl.Deny {
		t.Fatalf("Q1: %v", res.Verb)
	}
	send("Q2", "192.0.2.5", "alice@ruf.example", "alice@ruf.example")     // pass
	send("Q3", "203.0.113.9", "x@noreport.example", "alice@ruf.example")  // no control
	send("Q4", "203.0.113.9", "spoofer@bad.example", "alice@fod.example") // fo=d, unsigned
	got := forensicSpool(t, dir)
	if len(got) != 1 {
		t.Fatalf("%d reports spooled, want 1", len(got))
	}
	e := got[0]
	r := &e.Report
	if r.Sender != "dmarc-ruf.example@mx.example.net" || r.EnvelopeID != "Q1" || r.MailFrom != "spoofer@bad.example" ||
		r.SourceIP != "203.0.113.9" || r.FromDomain != "ruf.example" || r.PolicyDomain != "ruf.example" ||
		r.DeliveryResult != forensic.Reject || r.FailureOption != "1" || r.SPF != "none" || r.IncludeBody || r.Body != nil {
		t.Fatalf("report %+v", r)
	}
	if strings.Join(e.RUF, " ") != "mailto:ruf@ruf.example mailto:ruf@reports.example!1m" {
		t.Fatalf("ruf %q", e.RUF)
	}
	fb, err := forensic.ParseARF(bytes.NewReader(r.Mail("ruf@ruf.example", r.Arrival)))
	if err != nil {
		t.Fatal(err)
	}
	if fb.AuthFailure != "dmarc" || fb.OriginalType != "text/rfc822-headers" || !bytes.Contains(fb.Header, []byte("<alice@RUF.example>\n")) ||
		len(fb.AuthenticationResults) != 1 || !strings.Contains(fb.AuthenticationResults[0], "dmarc=fail") {
		t.Fatalf("ARF %+v\nheader %s", fb, fb.Header)
	}
}

// TestFailureReportRedacted: with dmarc_forensic_redact the report's
// copy of the header names no recipient — To, Cc and the Received
// clause hold keyed hashes of the local-parts, the same for the same
// mailbox — while the author and the rest stay as they came.
func TestFailureReportRedacted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	p := load(t, "dmarc_forensic_spool = "+dir+"\ndmarc_forensic_redact = yes\n"+forensicACL)
	msg := "Received: from client.example by mx.example.org\r\n\tfor <bob@example.org>; Mon, 01 Jan 2024 00:00:00 +0000\r\n" +
		"Cc: Carol Jones <carol@example.org>, \"Bob\" <Bob@example.org>\r\n" + plainMessage("alice@ruf.example", 100)
	deliver(t, p, svcFor(forensicZone()), delivery{ip: "203.0.113.9", helo: "client.example", sender: "spoofer@bad.example", queueID: "R1",
		rcpts: []string{"bob@example.org", "carol@example.org"}, msg: msg})
	got := forensicSpool(t, dir)
	if len(got) != 1 {
		t.Fatalf("%d reports", len(got))
	}
	h := string(got[0].Report.Header)
	for _, leak := range []string{"bob@", "Bob@", "carol@", "Carol Jones"} {
		if strings.Contains(h, leak) {
			t.Errorf("header still has %q:\n%s", leak, h)
		}
	}
	bob := regexp.MustCompile(`redacted-[0-9a-f]{12}@example\.org`).FindAllString(h, -1)
	if len(bob) != 4 || bob[0] != bob[2] || bob[0] != bob[3] || bob[0] == bob[1] {
		t.Errorf("redacted addresses %q (want bob's three the same, carol's another):\n%s", bob, h)
	}
	if !strings.Contains(h, "From: Alice <alice@ruf.example>\r\n") || !strings.Contains(h, "Subject: hello\r\n") {
		t.Errorf("author or subject changed:\n%s", h)
	}
}

// TestFailureReportBody: with dmarc_forensic_include_body the report
// carries the body, at most its first 64 KiB.
func TestFailureReportBody(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	p := load(t, "dmarc_forensic_spool = "+dir+"\ndmarc_forensic_include_body = yes\n"+forensicACL)
	svc := svcFor(forensicZone())
	for i, size := range []int{100, 200 << 10} {
		deliver(t, p, svc, delivery{ip: "203.0.113.9", helo: "client.example", sender: "spoofer@bad.example", queueID: "B" + string(rune('0'+i)),
			rcpts: []string{"bob@example.org"}, msg: plainMessage("alice@ruf.example", size), chunk: 7000})
	}
	got := forensicSpool(t, dir)
	if len(got) != 2 {
		t.Fatalf("%d reports", len(got))
	}
	small, large := &got[0].Report, &got[1].Report
	if !small.IncludeBody || small.BodyTruncated || len(small.Body) < 100 || len(small.Body) > 200 {
		t.Fatalf("small: include %v truncated %v, %d bytes", small.IncludeBody, small.BodyTruncated, len(small.Body))
	}
	if !large.BodyTruncated || len(large.Body) != forensic.MaxBodyBytes {
		t.Fatalf("large: truncated %v, %d bytes", large.BodyTruncated, len(large.Body))
	}
	if !strings.Contains(string(small.Mail("x@ruf.example", small.Arrival)), "Content-Type: message/rfc822") {
		t.Fatal("a report with its body is not message/rfc822")
	}
}

// TestFailureReportRateLimit: a spoofing wave of 25 failing messages of
// one domain leaves dmarc_forensic_rate's 3 reports; each dropped one is
// logged; the messages' verdicts do not change.
func TestFailureReportRateLimit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	p := load(t, "dmarc_forensic_spool = "+dir+"\ndmarc_forensic_rate = 3/1h\n"+forensicACL)
	svc := svcFor(forensicZone())
	dropped := 0
	spooled0, limited0 := forensic.Counted(forensic.ResultSpooled), forensic.Counted(forensic.ResultRateLimited)
	for range 25 {
		res, txn := deliver(t, p, svc, delivery{ip: "203.0.113.9", helo: "client.example", sender: "spoofer@bad.example",
			rcpts: []string{"bob@example.org"}, msg: plainMessage("alice@ruf.example", 100)})
		if res.Verb != acl.Deny {
			t.Fatalf("verdict %v", res.Verb)
		}
		for _, l := range logsOf(txn) {
			if strings.Contains(l, "dmarc_forensic_rate 3/1h0m0s reached") {
				dropped++
			}
		}
	}
	if n := len(forensicSpool(t, dir)); n != 3 || dropped != 22 {
		t.Fatalf("%d reports spooled, %d dropped; want 3 and 22", n, dropped)
	}
	if s, l := forensic.Counted(forensic.ResultSpooled)-spooled0, forensic.Counted(forensic.ResultRateLimited)-limited0; s != 3 || l != 22 {
		t.Fatalf("counted %d spooled, %d rate limited", s, l)
	}
}

// TestFailureReportSpoolUnusable: when the spool cannot be created the
// report is dropped and logged, and the message gets its verdict.
func TestFailureReportSpoolUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	p := load(t, "dmarc_forensic_spool = "+file+"/spool\n"+forensicACL)
	res, txn := deliver(t, p, svcFor(forensicZone()), delivery{ip: "203.0.113.9", helo: "client.example", sender: "spoofer@bad.example",
		rcpts: []string{"bob@example.org"}, msg: plainMessage("alice@ruf.example", 100)})
	if res.Verb != acl.Deny {
		t.Fatalf("verdict %v", res.Verb)
	}
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "error: DMARC failure report for ruf.example dropped: failure report spool") {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestForensicOptionErrors: bad values are refused at their position.
func TestForensicOptionErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"dmarc_forensic_sender = postmaster at example\n", "test.conf:1:25: dmarc_forensic_sender: \"postmaster at example\" is not an address"},
		{"dmarc_forensic_sender = x-$dmarc_forensic_sender\n", "test.conf:1:27"},
		{"dmarc_forensic_rate = ten\n", "test.conf:1:23"},
		{"dmarc_forensic_spool = relative\n", "test.conf:1:24"},
	} {
		t.Run(tc.conf, func(t *testing.T) {
			cfg, err := config.Load("test.conf", []byte(tc.conf))
			if err == nil {
				reg := acl.NewRegistry()
				Register(reg)
				_, err = acl.Compile(cfg, reg)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
