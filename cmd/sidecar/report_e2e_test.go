package main

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/internal/testkit/xmlschema"
	"github.com/mailsidecar/sidecar/report/aggregate"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestReportSendPostfix: the history goes through import and
// aggregate -send; a private Postfix (report_smtp) delivers the report
// mail into maildirs; the test opens each mail, unzips the report,
// validates it against the RFC 9990 schema and finds the messages of the
// history, grouped. External destinations are verified over DNS; a 5xx,
// an unverified destination and a size limit are final; a 4xx and a DNS
// failure are tried again by the next run, which sends nothing twice.
func TestReportSendPostfix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postfix")
	}
	mds := testmta.StartMaildirs(t, "rua.example", []string{"d0.example", "d1.example", "d2.example", "rua.example"},
		map[string]string{"dmarc@d0.example": "d0/", "reports@rua.example": "rua/", "later@d2.example": "later/"},
		"smtpd_recipient_restrictions = check_recipient_access inline:{ { later@d2.example=450 4.2.0 try again later } }, permit")
	pf, addr, base := mds.Postfix, mds.Addr, mds.Base

	zone := dnstest.NewZone()
	zone.AddRecord(resolver.Record{Name: "d1.example._report._dmarc.rua.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1"}})
	zone.SetFault("d3.example._report._dmarc.rua.example", resolver.TypeTXT, dnstest.ServFail)
	dns := dnstest.NewServer(t, zone)

	// The day: 600 messages of four domains from two sources each; every
	// third fails and was rejected.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	spec := historygen.Spec{Records: 600, Domains: 4, Sources: 2, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	rua := map[string][]string{
		"d0.example": {"mailto:dmarc@d0.example"},
		"d1.example": {"mailto:reports@rua.example", "mailto:reports@unverified.example"},
		"d2.example": {"mailto:unknown@d2.example", "mailto:later@d2.example", "mailto:dmarc@d2.example!1k"},
		"d3.example": {"mailto:reports@rua.example"},
	}
	var hist []byte
	for i := 0; i < spec.Records; i++ {
		r := spec.Record(i)
		r.RUA = rua[r.PolicyDomain]
		hist = r.AppendFormat(hist)
	}
	conf, histPath, _ := reportSetup(t, historygen.Spec{}, "dns_servers = "+dns.Addr()+"\nreport_smtp = "+addr+
		"\nreport_email = dmarc-reports@mx.example.net\nreport_org_name = Example Receiver\n")
	if err := os.WriteFile(histPath, hist, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd("report", "import", "-config", conf); code != 0 {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}

	code, out, errs := runCmd("report", "aggregate", "-config", conf, "-send")
	t.Logf("first run:\n%s%s", out, errs)
	if code != 1 {
		t.Errorf("exit status %d, want 1 (some destinations failed)", code)
	}
	for _, want := range []string{
		"d0.example mailto:dmarc@d0.example: sent\n",
		"d1.example mailto:reports@rua.example: sent\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	for _, want := range []string{
		"d1.example mailto:reports@unverified.example: failed: destination not verified: no v=DMARC1 TXT record at d1.example._report._dmarc.unverified.example",
		"d2.example mailto:unknown@d2.example: failed: rejected: SMTP RCPT: 550 5.1.1",
		"d2.example mailto:later@d2.example: temporary: temporary failure: SMTP RCPT: 450 4.2.0",
		"d2.example mailto:dmarc@d2.example!1k: failed: report larger than the destination's size limit",
		"d3.example mailto:reports@rua.example: temporary: temporary failure: d3.example._report._dmarc.rua.example TXT",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}

	// The mails: one in d0's maildir, one in rua's.
	for box, domain := range map[string]string{"d0": "d0.example", "rua": "d1.example"} {
		got := waitMaildir(t, mds, box, 1)
		if len(got) != 1 {
			t.Fatalf("%s: %d mails\n%s", box, len(got), pf.Log())
		}
		checkReportMail(t, got[0], domain, day)
	}

	// The second run: nothing sent again; the temporary failures are
	// tried again (and fail again), the final ones are not.
	code, out, errs = runCmd("report", "aggregate", "-config", conf, "-send")
	t.Logf("second run:\n%s%s", out, errs)
	if strings.Contains(out, ": sent") || strings.Count(errs, "\n") != 2 ||
		!strings.Contains(errs, "later@d2.example: temporary") || !strings.Contains(errs, "d3.example mailto:reports@rua.example: temporary") || code != 1 {
		t.Errorf("second run: %d", code)
	}
	// DNS repaired: the retry of d3 is sent.
	zone.SetFault("d3.example._report._dmarc.rua.example", resolver.TypeTXT, dnstest.NoFault)
	zone.AddRecord(resolver.Record{Name: "d3.example._report._dmarc.rua.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1;"}})
	code, out, errs = runCmd("report", "aggregate", "-config", conf, "-send", "-domain", "d3.example")
	if code != 0 || !strings.Contains(out, "d3.example mailto:reports@rua.example: sent") {
		t.Errorf("third run: %d\n%s%s", code, out, errs)
	}
	if got := waitMaildir(t, mds, "rua", 2); len(got) != 2 {
		t.Errorf("rua: %d mails, want 2", len(got))
	}
	if got, _ := filepath.Glob(filepath.Join(base, "d0", "new", "*")); len(got) != 1 {
		t.Errorf("d0: %d mails, want 1", len(got))
	}
}

// checkReportMail opens a delivered report mail of the day and checks
// the report's counts.
func checkReportMail(t *testing.T, raw, domain string, day time.Time) {
	t.Helper()
	_, x := openReportMail(t, raw, domain, day, day.Add(24*time.Hour))
	// 150 messages per domain: from each of its two passing sources 50,
	// from each of its two failing ones 25, rejected.
	if strings.Count(x, "<record>") != 4 || strings.Count(x, "<count>50</count>") != 2 || strings.Count(x, "<count>25</count>") != 2 ||
		strings.Count(x, "<disposition>reject</disposition>") != 2 || strings.Count(x, "<disposition>pass</disposition>") != 2 ||
		!strings.Contains(x, "<org_name>Example Receiver</org_name>") {
		t.Errorf("report:\n%s", x)
	}
}

// openReportMail opens a delivered mail of domain's report of [begin,
// end): its From, Subject, Report-Domain and Report-ID against the
// report it carries, the attachment named as RFC 9990 says with media
// type application/gzip, the report valid against RFC 9990's schema. It
// returns the report and its XML.
func openReportMail(t *testing.T, raw, domain string, begin, end time.Time) (aggregate.Feedback, string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("mx.example.net!%s!%d!%d.xml.gz", domain, begin.Unix(), end.Unix()-1)
	mr := multipart.NewReader(m.Body, params["boundary"])
	var gz []byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.Header.Get("Content-Type") == `application/gzip; name="`+name+`"` && p.Header.Get("Content-Disposition") == `attachment; filename="`+name+`"` {
			var b bytes.Buffer
			b.ReadFrom(base64.NewDecoder(base64.StdEncoding, p))
			gz = b.Bytes()
		}
	}
	if gz == nil {
		t.Fatalf("no application/gzip attachment named %s:\n%s", name, raw)
	}
	xmlschema.Validate(t, gz)
	x := gunzip(t, gz)
	var fb aggregate.Feedback
	if err := xml.Unmarshal([]byte(x), &fb); err != nil {
		t.Fatal(err)
	}
	id := fb.Metadata.ReportID
	for field, want := range map[string]string{"From": "<dmarc-reports@mx.example.net>", "Report-Domain": domain, "Report-ID": "<" + id + ">",
		"Subject": "Report Domain: " + domain + " Submitter: mx.example.net Report-ID: <" + id + ">"} {
		if got := m.Header.Get(field); got != want || id == "" {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	return fb, x
}
