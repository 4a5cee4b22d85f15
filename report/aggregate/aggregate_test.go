package aggregate

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/xmlschema"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/report/store"
)

var day = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

var reporter = Reporter{OrgName: "Example MX", Email: "dmarc-reports@mx.example.net", Contact: "https://mx.example.net/dmarc"}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func importRecords(t testing.TB, s *store.Store, recs ...*report.HistoryRecord) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		b = r.AppendFormat(b)
	}
	if res, err := s.Import(context.Background(), bytes.NewReader(b), "t", nil); err != nil || res.Added != int64(len(recs)) {
		t.Fatalf("import: %+v %v", res, err)
	}
}

// build returns the reports of the day, by domain.
func build(t testing.TB, s *store.Store, domain string) map[string]*Report {
	t.Helper()
	out := map[string]*Report{}
	b := &Builder{Reporter: reporter, Begin: day, End: day.Add(24 * time.Hour), Generator: "sidecar test",
		Emit: func(r *Report) error { out[r.Domain()] = r; return nil }}
	if err := s.Groups(context.Background(), day, day.Add(24*time.Hour), domain, b.Add); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	return out
}

// validated checks r's gzip'd document against RFC 9990's schema and
// returns it parsed.
func validated(t *testing.T, r *Report) Feedback {
	t.Helper()
	gz, err := r.Gzip()
	if err != nil {
		t.Fatal(err)
	}
	xmlschema.Validate(t, gz)
	x, _ := r.XML()
	var got Feedback
	if err := xml.Unmarshal(x, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// The report of one domain: metadata, the policy as last seen, the
// messages grouped by source, disposition, results, reasons and
// identifiers, each signature's result; valid against RFC 9990's schema.
func TestAggregateReport(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 9, Domains: 1, Sources: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	var recs []*report.HistoryRecord
	for i := 0; i < spec.Records; i++ {
		recs = append(recs, spec.Record(i)) // 6 passes from 192.0.2.1, 3 rejected failures from 203.0.113.1
	}
	// A failure delivered by local policy; one through a trusted ARC
	// sealer; a pass with two signatures; the policy changed to
	// quarantine later in the day; a message of the day before and one
	// of a domain without a record: none of those two counts.
	local := spec.Record(2)
	local.JobID, local.Action = "LOCAL", report.HistoryActionAccept
	arc := spec.Record(2)
	arc.JobID, arc.Action, arc.ARCPolicy, arc.IPAddr = "ARC", report.HistoryActionAccept, 0, "2001:db8::1"
	two := spec.Record(0)
	two.JobID, two.MailFrom = "TWO", ""
	two.DKIM = append(two.DKIM, report.HistoryDKIM{Domain: "esp.example", Selector: "k1", Result: report.ARESFail})
	later := spec.Record(0)
	later.JobID, later.Received, later.P, later.SP = "LATER", day.Add(20*time.Hour), 'q', 'n'
	before := spec.Record(0)
	before.JobID, before.Received = "BEFORE", day.Add(-time.Second)
	norec := spec.Record(0)
	norec.JobID, norec.PolicyDomain, norec.Policy = "NOREC", "norec.example", report.HistoryPolicyAbsent
	importRecords(t, s, append(recs, local, arc, two, later, before, norec)...)

	reports := build(t, s, "")
	if len(reports) != 1 || reports["d0.example"] == nil {
		t.Fatalf("reports %v", reports)
	}
	r := reports["d0.example"]
	got := validated(t, r)
	if got.Metadata.OrgName != "Example MX" || got.Metadata.Email != reporter.Email || got.Metadata.Contact != reporter.Contact ||
		got.Metadata.DateRange != (DateRange{day.Unix(), day.Unix() + 86399}) || got.Metadata.ReportID == "" {
		t.Errorf("metadata %+v", got.Metadata)
	}
	if got.Policy != (Published{Domain: "d0.example", P: "quarantine", SP: "none", ADKIM: "r", ASPF: "r"}) {
		t.Errorf("policy_published %+v", got.Policy)
	}
	var lines []string
	for _, rec := range got.Records {
		ev := rec.Row.Evaluated
		line := rec.Row.SourceIP + " " + strings.Repeat("#", int(rec.Row.Count)) + " " + ev.Disposition + " dkim=" + ev.DKIM + " spf=" + ev.SPF
		for _, re := range ev.Reasons {
			line += " reason=" + re.Type
		}
		line += " from=" + rec.Identifiers.HeaderFrom + " mfrom=" + rec.Identifiers.EnvelopeFrom
		for _, d := range rec.AuthResults.DKIM {
			line += " dkim:" + d.Domain + "/" + d.Selector + "=" + d.Result
		}
		if rec.AuthResults.SPF != nil {
			line += " spf:" + rec.AuthResults.SPF.Domain + "/" + rec.AuthResults.SPF.Scope + "=" + rec.AuthResults.SPF.Result
		}
		lines = append(lines, line)
	}
	want := []string{
		"192.0.2.1 ####### pass dkim=pass spf=pass from=d0.example mfrom=d0.example dkim:d0.example/s1=pass spf:d0.example/mfrom=pass",
		"203.0.113.1 ### reject dkim=fail spf=fail from=d0.example mfrom=d0.example spf:d0.example/mfrom=fail",
		"192.0.2.1 # pass dkim=pass spf=pass from=d0.example mfrom= dkim:d0.example/s1=pass dkim:esp.example/k1=fail",
		"2001:db8::1 # none dkim=fail spf=fail reason=trusted_forwarder from=d0.example mfrom=d0.example spf:d0.example/mfrom=fail",
		"203.0.113.1 # none dkim=fail spf=fail reason=local_policy from=d0.example mfrom=d0.example spf:d0.example/mfrom=fail",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if name := r.FileName(""); name != "mx.example.net!d0.example!1772323200!1772409599.xml.gz" {
		t.Errorf("file name %s", name)
	}
	if len(r.RUA) != 1 || r.RUA[0] != "mailto:dmarc@d0.example" {
		t.Errorf("rua %v", r.RUA)
	}
	// -domain: only that one.
	if got := build(t, s, "norec.example"); len(got) != 0 {
		t.Errorf("a domain without a record has a report")
	}
}

// The reports of many domains are each valid.
func TestAggregateManyDomains(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 2000, Domains: 50, Sources: 3, Start: day, Step: 40 * time.Second, Reporter: "mx1.example"}
	var b bytes.Buffer
	spec.Write(&b)
	if _, err := s.Import(context.Background(), &b, "t", nil); err != nil {
		t.Fatal(err)
	}
	reports := build(t, s, "")
	if len(reports) != 50 {
		t.Fatalf("%d reports", len(reports))
	}
	var total int64
	for _, r := range reports {
		for _, rec := range r.Records {
			total += rec.Row.Count
		}
	}
	if total != 2000 {
		t.Errorf("%d messages in the reports", total)
	}
	gz, _ := reports["d7.example"].Gzip()
	xmlschema.Validate(t, gz)
}

// BenchmarkAggregate10000Domains builds and compresses the reports of
// 10,000 policy domains from 1,000,000 messages of one day.
func BenchmarkAggregate10000Domains(b *testing.B) {
	s := openStore(b)
	spec := historygen.Spec{Records: 1000000, Domains: 10000, Sources: 5, Start: day, Step: 86 * time.Millisecond, Reporter: "mx1.example"}
	var buf bytes.Buffer
	spec.Write(&buf)
	if _, err := s.Import(context.Background(), &buf, "t", nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		cpu0 := cpuTime()
		n, size := 0, 0
		bl := &Builder{Reporter: reporter, Begin: day, End: day.Add(24 * time.Hour), Emit: func(r *Report) error {
			gz, err := r.Gzip()
			n++
			size += len(gz)
			return err
		}}
		if err := s.Groups(context.Background(), day, day.Add(24*time.Hour), "", bl.Add); err != nil {
			b.Fatal(err)
		}
		bl.Flush()
		if n != 10000 {
			b.Fatalf("%d reports", n)
		}
		cpu += cpuTime() - cpu0
		b.ReportMetric(float64(size)/float64(n), "gz-bytes/report")
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the process's CPU time, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// An SMTP server out of reach is a temporary failure: recorded as such,
// never as sent, and tried again by the next run.
func TestSendUnreachable(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 3, Domains: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	var recs []*report.HistoryRecord
	for i := 0; i < 3; i++ {
		recs = append(recs, spec.Record(i))
	}
	importRecords(t, s, recs...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	snd := &Sender{Store: s, DNS: dnstest.NewZone(), From: "r@mx.example.net", SMTP: &mailout.Client{Addr: addr, Timeout: 5 * time.Second}}
	r := build(t, s, "")["d0.example"]
	for run := 1; run <= 2; run++ {
		out, err := snd.Send(context.Background(), r, day, day.Add(24*time.Hour))
		if err != nil || len(out) != 1 || out[0].Status != store.DeliveryTemporary || !errors.Is(out[0].Err, ErrTemporary) {
			t.Fatalf("run %d: %+v %v", run, out, err)
		}
		d, ok, err := s.LookupDelivery(context.Background(), "d0.example", day, "mailto:dmarc@d0.example")
		if !ok || err != nil || d.Status != store.DeliveryTemporary || d.Attempts != run || !strings.Contains(d.Detail, "connection refused") {
			t.Errorf("run %d: recorded %+v %v", run, d, err)
		}
	}
}

// Records in the sidecar history format give what OpenDMARC's cannot:
// np, fo and testing in policy_published, envelope_to, the domain and
// scope SPF checked, and the override reasons as the finisher saw them;
// the report stays valid against RFC 9990's schema.
func TestAggregateSidecarFields(t *testing.T) {
	s := openStore(t)
	spec := historygen.Spec{Records: 3, Domains: 1, Sources: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	ext := func(r *report.HistoryRecord, testing int, rcpts []string, reasons ...report.OverrideReason) *report.HistoryRecord {
		r.Ext = &report.HistoryExt{SPFDomain: r.MailFrom, SPFScope: report.SPFScopeMailFrom, RcptDomains: rcpts,
			NP: 'q', PSD: 'n', Testing: testing, FO: "1:d", Override: reasons}
		return r
	}
	one := []string{"example.org"}
	pass := ext(spec.Record(0), 'y', one)
	pass.JobID, pass.Received = "PASS", day.Add(20*time.Hour) // the latest: policy_published
	rejected := ext(spec.Record(2), 'n', []string{"example.org", "example.net"})
	testing := ext(spec.Record(2), 'y', one, report.OverrideSampledOut, report.OverrideLocalPolicy)
	testing.JobID, testing.Action, testing.IPAddr = "TESTING", report.HistoryActionAccept, "203.0.113.2"
	pct := ext(spec.Record(2), 'n', one, report.OverrideSampledOut)
	pct.JobID, pct.Action, pct.IPAddr = "PCT", report.HistoryActionQuarantine, "203.0.113.3"
	deferred := ext(spec.Record(2), 'n', one, report.OverrideOther)
	deferred.JobID, deferred.Action, deferred.IPAddr = "DEFER", report.HistoryActionTempFail, "203.0.113.4"
	arc := ext(spec.Record(2), 'n', one, report.OverrideTrustedForwarder)
	arc.JobID, arc.Action, arc.ARCPolicy, arc.IPAddr = "ARC", report.HistoryActionAccept, 0, "203.0.113.5"
	null := ext(spec.Record(2), 'n', one)
	null.JobID, null.MailFrom, null.IPAddr = "NULL", "", "203.0.113.6"
	null.Ext.SPFDomain, null.Ext.SPFScope = "mail.d0.example", report.SPFScopeHelo
	opendmarc := spec.Record(2) // no extension: reasons inferred, no envelope_to
	opendmarc.JobID, opendmarc.Action, opendmarc.IPAddr = "OPENDMARC", report.HistoryActionAccept, "203.0.113.7"
	importRecords(t, s, pass, rejected, testing, pct, deferred, arc, null, opendmarc)

	got := validated(t, build(t, s, "")["d0.example"])
	if want := (Published{Domain: "d0.example", P: "reject", NP: "quarantine", ADKIM: "r", ASPF: "r", FO: "1:d", Testing: "y"}); got.Policy != want {
		t.Errorf("policy_published %+v, want %+v", got.Policy, want)
	}
	var lines []string
	for _, rec := range got.Records {
		ev := rec.Row.Evaluated
		line := rec.Row.SourceIP + " " + ev.Disposition
		for _, re := range ev.Reasons {
			line += " reason=" + re.Type
			if re.Comment != "" {
				line += "(" + re.Comment + ")"
			}
		}
		line += " to=" + rec.Identifiers.EnvelopeTo
		if spf := rec.AuthResults.SPF; spf != nil {
			line += " spf:" + spf.Domain + "/" + spf.Scope + "=" + spf.Result
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	want := []string{
		"192.0.2.1 pass to=example.org spf:d0.example/mfrom=pass",
		"203.0.113.1 reject to= spf:d0.example/mfrom=fail",
		"203.0.113.2 none reason=policy_test_mode(t=y) reason=local_policy to=example.org spf:d0.example/mfrom=fail",
		"203.0.113.3 quarantine reason=other(pct= sampling) to=example.org spf:d0.example/mfrom=fail",
		"203.0.113.4 none reason=other(deferred) to=example.org spf:d0.example/mfrom=fail",
		"203.0.113.5 none reason=trusted_forwarder(ARC chain of a trusted sealer) to=example.org spf:d0.example/mfrom=fail",
		"203.0.113.6 reject to=example.org spf:mail.d0.example/=fail",
		"203.0.113.7 none reason=local_policy to= spf:d0.example/mfrom=fail",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
