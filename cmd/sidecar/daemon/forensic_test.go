package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/report/forensic"
)

func spoolEntry(domain string) *forensic.Entry {
	return &forensic.Entry{Created: time.Now(), RUF: []string{"mailto:ruf@ruf.example"}, Report: forensic.Report{
		Sender: "dmarc-noreply@mx.example.net", ReportingMTA: "mx.example.net", UserAgent: "sidecar/test", Arrival: time.Now(),
		SourceIP: "203.0.113.9", MailFrom: "spoofer@bad.example", FromDomain: domain, PolicyDomain: "ruf.example",
		AuthResults: "mx.example.net; dmarc=fail header.from=" + domain, FailureOption: "1", DeliveryResult: forensic.Reject,
		Header: []byte("From: alerts@" + domain + "\r\nSubject: verify\r\n")}}
}

func waitUntil(t *testing.T, what string, log *testmta.SyncBuffer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s; log:\n%s", what, log.String())
		}
	}
}

// TestForensicSpoolSurvivesRestart: a report spooled while report_smtp
// defers it stays in the spool across a stop; a report spooled while the
// daemon is stopped waits there too; the restarted daemon delivers both
// to a real Postfix, which files them in the ruf mailbox, and the spool
// is empty.
func TestForensicSpoolSurvivesRestart(t *testing.T) {
	mds := testmta.StartMaildirs(t, "ruf.example", []string{"ruf.example"}, map[string]string{"ruf@ruf.example": "ruf/"})
	postfix, maildir := mds.Addr, filepath.Join(mds.Base, "ruf", "new")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	later := testmta.ServeSink(t, l, testmta.SinkOptions{RcptReply: "451 4.3.0 try again later"})
	dns := dnstest.NewServer(t, dnstest.NewZone())
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	conf := filepath.Join(dir, "sidecar.conf")
	write := func(smtp string) {
		text := "milter_listen =\npolicy_listen =\ndns_servers = " + dns.Addr() + "\ndmarc_forensic_spool = " + spoolDir + "\nreport_smtp = " + smtp + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := forensic.OpenSpool(spoolDir)
	if err != nil {
		t.Fatal(err)
	}

	write(later.Addr())
	var log1 testmta.SyncBuffer
	d, err := New(conf, registry(), &log1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(spoolEntry("bank.example")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "deferred report", &log1, func() bool { return strings.Contains(log1.String(), "will try again") })
	if err := d.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(spoolEntry("shop.example")); err != nil {
		t.Fatal(err)
	}
	ids, _ := sp.IDs()
	if len(ids) != 2 {
		t.Fatalf("%d reports in the spool after the stop, want 2", len(ids))
	}
	// The deferred report's next attempt is a minute away: let it be due.
	e, _ := sp.Load(ids[0])
	if e.Attempts != 1 || e.Next.IsZero() {
		t.Fatalf("deferred report: %d attempts, next %v", e.Attempts, e.Next)
	}
	e.Next = time.Time{}
	sp.Update(e)

	write(postfix)
	var log2 testmta.SyncBuffer
	d, err = New(conf, registry(), &log2)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	waitUntil(t, "two reports in the ruf mailbox", &log2, func() bool {
		des, _ := os.ReadDir(maildir)
		return len(des) == 2
	})
	des, _ := os.ReadDir(maildir)
	var domains []string
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(maildir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := forensic.ParseARF(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if fb.FeedbackType != "auth-failure" || fb.AuthFailure != "dmarc" {
			t.Fatalf("report %+v", fb)
		}
		domains = append(domains, fb.ReportedDomain...)
	}
	if got := strings.Join(domains, " "); got != "bank.example shop.example" && got != "shop.example bank.example" {
		t.Fatalf("reported domains %q", got)
	}
	waitUntil(t, "empty spool", &log2, func() bool { return sp.Len() == 0 })
	if n := strings.Count(log2.String(), "DMARC failure report sent"); n != 2 {
		t.Fatalf("%d reports logged as sent, want 2:\n%s", n, log2.String())
	}
}
