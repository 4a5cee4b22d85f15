package main

// Real report consumers from Debian read what sidecar writes: dmarc-cat
// the gzip files of both formats, and Mail::DMARC (libmail-dmarc-perl:
// dmarc_receive, dmarc_view_reports) the report mails in RFC 7489's
// format (version 1.20211209 reads no RFC 9990 report: it looks for a
// /feedback in no namespace). No consumer reaches the network: dmarc-cat
// runs with -N (no reverse DNS), Mail::DMARC's viewer without --dns, and
// both in a network namespace of their own when the test may make one.

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/aggregate"
)

// consumerHistory is a day of two policy domains: passes, rejected
// failures, one quarantined, one delivered by local policy, one pass
// from an IPv6 source.
func consumerHistory(day time.Time) []byte {
	spec := historygen.Spec{Records: 18, Domains: 2, Sources: 1, Start: day.Add(time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	var b []byte
	for i := 0; i < spec.Records; i++ {
		b = spec.Record(i).AppendFormat(b)
	}
	quar, local, v6 := spec.Record(2), spec.Record(2), spec.Record(0)
	quar.JobID, quar.IPAddr, quar.Action = "QUAR", "203.0.113.7", report.HistoryActionQuarantine
	local.JobID, local.IPAddr, local.Action = "LOCAL", "203.0.113.8", report.HistoryActionAccept
	v6.JobID, v6.IPAddr = "V6", "2001:db8::5"
	for _, r := range []*report.HistoryRecord{quar, local, v6} {
		b = r.AppendFormat(b)
	}
	return b
}

// offline returns a command that cannot reach the network: in a network
// namespace of its own when unshare works here (as root), else as is
// (the callers' flags already keep them off the network).
func offline(name string, args ...string) *exec.Cmd {
	if unshare, err := exec.LookPath("unshare"); err == nil && exec.Command(unshare, "--net", "true").Run() == nil {
		return exec.Command(unshare, append([]string{"--net", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// TestReportConsumers writes the reports of a day in both formats
// (report aggregate -out, and -send to an SMTP sink) and has real
// consumers read them: every record of every report must be in their
// output with its source, count, domains and results, and Mail::DMARC's
// with its disposition and override reason.
func TestReportConsumers(t *testing.T) {
	needBinary(t, "/usr/bin/dmarc-cat", "dmarc-cat", "report consumer test")
	needBinary(t, "/usr/bin/dmarc_receive", "libmail-dmarc-perl", "report consumer test")
	needBinary(t, "/usr/bin/dmarc_view_reports", "libmail-dmarc-perl", "report consumer test")
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	dns := dnstest.NewServer(t, dnstest.NewZone())
	for _, format := range []string{report.ReportFormatRFC9990, report.ReportFormatRFC7489} {
		t.Run(format, func(t *testing.T) {
			sink := testmta.StartSink(t)
			extra := "dns_servers = " + dns.Addr() + "\nreport_smtp = " + sink.Addr() + "\nreport_email = dmarc-reports@mx.example.net\n"
			if format == report.ReportFormatRFC7489 {
				extra += "dmarc_discovery = psl\ndmarc_report_format = rfc7489\n"
			}
			conf, hist, _ := reportSetup(t, historygen.Spec{}, extra)
			if err := os.WriteFile(hist, consumerHistory(day), 0o600); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if code, o, errs := runCmd("report", "import", "-q", "-config", conf); code != 0 {
				t.Fatalf("import: %d %s%s", code, o, errs)
			}
			if code, o, errs := runCmd("report", "aggregate", "-q", "-config", conf, "-begin", "2026-03-01", "-out", out, "-send"); code != 0 {
				t.Fatalf("aggregate: %d %s%s", code, o, errs)
			}
			files, _ := filepath.Glob(filepath.Join(out, "*.xml.gz"))
			if len(files) != 2 {
				t.Fatalf("%d reports written, want 2", len(files))
			}
			var all []aggregate.Record
			for _, f := range files {
				all = append(all, dmarcCatReads(t, f)...)
			}
			if format == report.ReportFormatRFC7489 {
				mailDMARCReads(t, []string{<-sink.Msgs, <-sink.Msgs}, all)
			}
		})
	}
}

// dmarcCatReads runs dmarc-cat on a report file and finds each of the
// report's records in its table (IP, Count, From, RFrom, then the
// auth_results' DKIM and SPF results); it returns the records.
func dmarcCatReads(t *testing.T, file string) []aggregate.Record {
	t.Helper()
	gz, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var fb aggregate.Feedback
	if err := xml.Unmarshal([]byte(gunzip(t, gz)), &fb); err != nil {
		t.Fatal(err)
	}
	b, err := offline("/usr/bin/dmarc-cat", "-N", file).CombinedOutput()
	got := string(b)
	if err != nil || !strings.Contains(got, "Domain: "+fb.Policy.Domain+"\n") || !strings.Contains(got, "Policy: p="+fb.Policy.P+";") ||
		!strings.Contains(got, fmt.Sprintf("Reports(%d):", len(fb.Records))) {
		t.Fatalf("dmarc-cat %s: %v\n%s", filepath.Base(file), err, got)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(got, "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	for _, rec := range fb.Records {
		// Both consumers show IPv6 addresses shortened.
		ip := netip.MustParseAddr(rec.Row.SourceIP).String()
		want := []string{ip, strconv.FormatInt(rec.Row.Count, 10), rec.Identifiers.HeaderFrom, rec.Identifiers.EnvelopeFrom}
		if len(rec.AuthResults.DKIM) > 0 {
			want = append(want, rec.AuthResults.DKIM[0].Result)
		}
		if rec.AuthResults.SPF != nil {
			want = append(want, rec.AuthResults.SPF.Result)
		}
		if !rows[strings.Join(want, " ")] {
			t.Errorf("dmarc-cat %s: no row %q in\n%s", filepath.Base(file), strings.Join(want, " "), got)
		}
	}
	return fb.Records
}

// mailDMARCReads feeds the report mails to Mail::DMARC's dmarc_receive
// (into an SQLite store of its own) and finds every record in what
// dmarc_view_reports lists: count, From domain, source, disposition,
// DMARC DKIM and SPF results, override reason.
func mailDMARCReads(t *testing.T, mails []string, records []aggregate.Record) {
	t.Helper()
	dir := t.TempDir()
	ini := filepath.Join(dir, "mail-dmarc.ini")
	if err := os.WriteFile(ini, []byte("[organization]\ndomain = example.org\norg_name = test\nemail = dmarc@example.org\n"+
		"[report_store]\nbackend = SQL\ndsn = dbi:SQLite:dbname="+filepath.Join(dir, "reports.sqlite")+"\nuser =\npass =\n"+
		"[dmarc]\nbackend = perl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		cmd := offline(name, args...)
		cmd.Env = append(os.Environ(), "MAIL_DMARC_CONFIG_FILE="+ini)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		return string(b)
	}
	for i, m := range mails {
		path := filepath.Join(dir, fmt.Sprintf("report%d.eml", i))
		if err := os.WriteFile(path, []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
		run("/usr/bin/dmarc_receive", "--file", path)
	}
	got := run("/usr/bin/dmarc_view_reports")
	rows := map[string]bool{}
	for _, line := range strings.Split(got, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "|" && f[1] == "--" && f[2] != "Qty" {
			rows[strings.Join(f[2:], " ")] = true
		}
	}
	seen := map[string]bool{}
	for _, rec := range records {
		ev := rec.Row.Evaluated
		// A reason is shown as type( comment ).
		ip := netip.MustParseAddr(rec.Row.SourceIP).String()
		want := []string{strconv.FormatInt(rec.Row.Count, 10), rec.Identifiers.HeaderFrom, ip, ev.Disposition, ev.DKIM, ev.SPF}
		for _, r := range ev.Reasons {
			if want = append(want, r.Type); r.Comment != "" {
				want[len(want)-1] += "( " + r.Comment + " )"
			}
		}
		line := strings.Join(strings.Fields(strings.Join(want, " ")), " ")
		if !rows[line] {
			t.Errorf("dmarc_view_reports: no row %q in\n%s", line, got)
		}
		seen[ev.Disposition] = true
	}
	if !seen["none"] || !seen["reject"] || !seen["quarantine"] || len(rows) != len(records) {
		t.Errorf("dispositions %v; %d rows for %d records:\n%s", seen, len(rows), len(records), got)
	}
}
