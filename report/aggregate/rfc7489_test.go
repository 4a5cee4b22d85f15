package aggregate

import (
	"encoding/xml"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/xmlschema"
	"github.com/mailsidecar/sidecar/report"
)

// The same day's records in both formats, each valid against its RFC's
// schema: every override reason the history records, every optional
// element sidecar writes (extra_contact_info, adkim, aspf, reason with
// comment, envelope_to, DKIM selectors), IPv6 and null-sender sources.
// RFC 7489's document maps what RFC 9990 added: no np, testing or
// generator, disposition pass reported as none, sampled_out for t=y and
// pct=, sp, pct and fo always, every IPv6 address in full, an SPF
// result (scope helo for the null sender) in every record.
func TestAggregateRFC7489(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 3, Domains: 1, Sources: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	ext := func(r *report.HistoryRecord, job, ip string, action int, testing int, reasons ...report.OverrideReason) *report.HistoryRecord {
		r.JobID, r.IPAddr, r.Action = job, ip, action
		r.Ext = &report.HistoryExt{SPFDomain: r.MailFrom, SPFScope: report.SPFScopeMailFrom, RcptDomains: []string{"example.org"},
			NP: 'q', PSD: 'n', Testing: testing, FO: "1:d", Override: reasons}
		return r
	}
	accept, quarantine := report.HistoryActionAccept, report.HistoryActionQuarantine
	pass := ext(spec.Record(0), "PASS", "192.0.2.1", accept, 'n')
	pass.Received = day.Add(20 * time.Hour) // the latest: policy_published
	pass.DKIM = append(pass.DKIM, report.HistoryDKIM{Domain: "esp.example", Selector: "k1", Result: report.ARESFail})
	recs := []*report.HistoryRecord{pass,
		ext(spec.Record(2), "REJECT", "2001:db8::25", report.HistoryActionReject, 'n'),
		ext(spec.Record(2), "LOCAL", "203.0.113.2", accept, 'n', report.OverrideLocalPolicy),
		ext(spec.Record(2), "ARC", "203.0.113.3", accept, 'n', report.OverrideTrustedForwarder),
		ext(spec.Record(2), "LIST", "203.0.113.4", accept, 'n', report.OverrideMailingList),
		ext(spec.Record(2), "PCT", "203.0.113.5", quarantine, 'n', report.OverrideSampledOut),
		ext(spec.Record(2), "TESTING", "203.0.113.6", accept, 'y', report.OverrideSampledOut),
		ext(spec.Record(2), "MODE", "203.0.113.7", accept, 'y', report.OverridePolicyTestMode),
		ext(spec.Record(2), "DEFER", "203.0.113.8", report.HistoryActionTempFail, 'n', report.OverrideOther),
	}
	null := ext(spec.Record(2), "NULL", "::ffff:203.0.113.9", report.HistoryActionReject, 'n')
	null.MailFrom, null.Ext.SPFDomain, null.Ext.SPFScope = "", "mail.d0.example", report.SPFScopeHelo
	opendmarcNull := spec.Record(2) // OpenDMARC's record: no HELO name
	opendmarcNull.JobID, opendmarcNull.MailFrom, opendmarcNull.IPAddr = "ONULL", "", "203.0.113.10"
	importRecords(t, s, append(recs, null, opendmarcNull)...)

	r := build(t, s, "")["d0.example"]
	validated(t, r) // RFC 9990
	r.Format = FormatRFC7489
	gz, err := r.Gzip()
	if err != nil {
		t.Fatal(err)
	}
	xmlschema.ValidateRFC7489(t, gz)
	doc, _ := r.XML()
	var got feedback7489
	if err := xml.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, absent := range []string{"xmlns", "<np>", "<testing>", "<generator>", "policy_test_mode", "<disposition>pass"} {
		if strings.Contains(text, absent) {
			t.Errorf("the RFC 7489 report has %q:\n%s", absent, text)
		}
	}
	if want := (published7489{Domain: "d0.example", ADKIM: "r", ASPF: "r", P: "reject", SP: "reject", Pct: 100, FO: "1:d"}); got.Policy != want {
		t.Errorf("policy_published %+v, want %+v", got.Policy, want)
	}
	if m := got.Metadata; m.Contact != reporter.Contact || m.ReportID != r.Metadata.ReportID || m.DateRange != r.Metadata.DateRange {
		t.Errorf("report_metadata %+v", m)
	}
	var lines []string
	for _, rec := range got.Records {
		ev := rec.Row.Evaluated
		line := rec.Row.SourceIP + " " + strconv.FormatInt(rec.Row.Count, 10) + " " + ev.Disposition + " dkim=" + ev.DKIM + " spf=" + ev.SPF
		for _, re := range ev.Reasons {
			line += " reason=" + re.Type + "(" + re.Comment + ")"
		}
		id := rec.Identifiers
		line += " to=" + id.EnvelopeTo + " mfrom=" + id.EnvelopeFrom + " from=" + id.HeaderFrom
		for _, d := range rec.AuthResults.DKIM {
			line += " dkim:" + d.Domain + "/" + d.Selector + "=" + d.Result
		}
		spf := rec.AuthResults.SPF
		lines = append(lines, line+" spf:"+spf.Domain+"/"+spf.Scope+"="+spf.Result)
	}
	sort.Strings(lines)
	want := []string{
		"192.0.2.1 1 none dkim=pass spf=pass to=example.org mfrom=d0.example from=d0.example dkim:d0.example/s1=pass dkim:esp.example/k1=fail spf:d0.example/mfrom=pass",
		"2001:0db8:0000:0000:0000:0000:0000:0025 1 reject dkim=fail spf=fail to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.10 1 reject dkim=fail spf=fail to= mfrom= from=d0.example spf:/helo=fail",
		"203.0.113.2 1 none dkim=fail spf=fail reason=local_policy() to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.3 1 none dkim=fail spf=fail reason=trusted_forwarder(ARC chain of a trusted sealer) to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.4 1 none dkim=fail spf=fail reason=mailing_list() to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.5 1 quarantine dkim=fail spf=fail reason=sampled_out(pct= sampling) to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.6 1 none dkim=fail spf=fail reason=sampled_out(t=y) to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.7 1 none dkim=fail spf=fail reason=sampled_out() to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.8 1 none dkim=fail spf=fail reason=other(deferred) to=example.org mfrom=d0.example from=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.9 1 reject dkim=fail spf=fail to=example.org mfrom= from=d0.example spf:mail.d0.example/helo=fail",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// The file and the mail are named as in RFC 9990; the text part
	// names RFC 7489.
	if name := r.FileName(""); name != "mx.example.net!d0.example!1772323200!1772409599.xml.gz" {
		t.Errorf("file name %s", name)
	}
	if m := string(Mail(r, gz, reporter.Email, "dmarc@d0.example", day)); !strings.Contains(m, "aggregate report (RFC 7489)") ||
		!strings.Contains(m, "Content-Type: application/gzip; name=\"mx.example.net!d0.example!1772323200!1772409599.xml.gz\"") {
		t.Errorf("mail:\n%s", m)
	}
}

// Two records RFC 9990 tells apart and RFC 7489 cannot (a pass under
// an enforcing policy, disposition pass, and one under p=none) are one
// record of RFC 7489's report, counted together.
func TestAggregateRFC7489Merges(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 1, Domains: 1, Sources: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	enforced, relaxed, third := spec.Record(0), spec.Record(0), spec.Record(0)
	relaxed.JobID, relaxed.P, relaxed.Received = "NONE", 'n', day.Add(2*time.Hour)
	third.JobID, third.Received = "THIRD", day.Add(3*time.Hour)
	importRecords(t, s, enforced, relaxed, third)
	r := build(t, s, "")["d0.example"]
	if len(r.Records) != 2 {
		t.Fatalf("RFC 9990: %d records, want 2 (pass and none)", len(r.Records))
	}
	r.Format = FormatRFC7489
	doc := r.feedback7489()
	if len(doc.Records) != 1 || doc.Records[0].Row.Count != 3 || doc.Records[0].Row.Evaluated.Disposition != "none" {
		t.Errorf("RFC 7489: %+v", doc.Records)
	}
}

func TestReason7489(t *testing.T) {
	for _, tc := range []struct {
		in   Reason
		want string
	}{
		{Reason{Type: "other", override: report.OverrideSampledOut}, "sampled_out"},
		{Reason{Type: "policy_test_mode", override: report.OverrideSampledOut}, "sampled_out"},
		{Reason{Type: "policy_test_mode"}, "sampled_out"},
		{Reason{Type: "local_policy"}, "local_policy"},
		{Reason{Type: "trusted_forwarder"}, "trusted_forwarder"},
		{Reason{Type: "mailing_list"}, "mailing_list"},
		{Reason{Type: "other"}, "other"},
		{Reason{Type: "forwarded"}, "forwarded"},
		{Reason{Type: "something_new"}, "other"},
	} {
		if got := reason7489(tc.in); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestIP7489(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8::1":          "2001:0db8:0000:0000:0000:0000:0000:0001",
		"fe80::1%eth0":         "fe80:0000:0000:0000:0000:0000:0000:0001",
		"::":                   "0000:0000:0000:0000:0000:0000:0000:0000",
		"2001:DB8:1:2:3:4:5:6": "2001:0db8:0001:0002:0003:0004:0005:0006",
	} {
		if got := ip7489(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
