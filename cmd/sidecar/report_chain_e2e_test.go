package main

// The DMARC report chain end to end (issue 14, "Proven end to end"):
//
//	clients 127.0.0.2-5 -> Postfix MX (smtpd_milters = sidecar) -> sink
//	sidecar: dmarc_history_file (sidecar format)
//	sidecar report import; sidecar report aggregate -send
//	  -> report_smtp = a second Postfix -> maildirs of the rua mailboxes
//
// The senders' SPF, DKIM and DMARC records (with their rua=) are served
// by an in-process DNS server on loopback.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/report/aggregate"
)

// chainACL refuses what DMARC says to reject, quarantines what it says
// to quarantine and delivers the rest.
const chainACL = `acl_smtp_data = data
begin acl
data:
  deny    dmarc_status = reject
          message      = 550 5.7.1 DMARC policy of $dmarc_used_domain says reject
  accept  dmarc_status = quarantine
          control      = quarantine/DMARC policy
  accept
`

// chainMessage is one kind of message of the mix and how many are sent.
type chainMessage struct {
	n       int
	ip      string // the client's source address
	from    string // header From and MAIL FROM domain
	signed  bool   // DKIM-signed by the From domain
	refused bool   // the MX refuses it at the end of data
}

// TestReportChainPostfix: a known mix of messages goes through a real
// Postfix with sidecar as its milter; the history it writes goes through
// "sidecar report import" and "sidecar report aggregate -send"; a second
// Postfix delivers the report mails into the rua maildirs. Each mail is
// opened: its header, the attachment's name and media type, the report
// valid against RFC 9990's schema and holding exactly the messages sent,
// grouped by source, disposition and results. The external destination
// without a verification record gets nothing; a second run sends
// nothing.
func TestReportChainPostfix(t *testing.T) {
	testmta.NeedPostfix(t, "DMARC report end-to-end test")
	if testing.Short() {
		t.Skip("starts two Postfix instances")
	}
	start := time.Now()
	dir := t.TempDir()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// a.example: p=reject, SPF for 127.0.0.2, a DKIM key; b.example:
	// p=quarantine, SPF for 127.0.0.3, rua to a verified and an
	// unverified external destination; c.example: p=none, no SPF pass.
	zone := dnstest.NewZone().Add(
		`a.example. TXT "v=spf1 ip4:127.0.0.2 -all"`,
		`s1._domainkey.a.example. TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
		`_dmarc.a.example. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@a.example"`,
		`b.example. TXT "v=spf1 ip4:127.0.0.3 -all"`,
		`_dmarc.b.example. TXT "v=DMARC1; p=quarantine; rua=mailto:reports@rua.example,mailto:reports@unverified.example"`,
		`b.example._report._dmarc.rua.example. TXT "v=DMARC1"`,
		`c.example. TXT "v=spf1 -all"`,
		`_dmarc.c.example. TXT "v=DMARC1; p=none; rua=mailto:dmarc@c.example"`,
	)
	dns := dnstest.NewServer(t, zone)
	rua := testmta.StartMaildirs(t, "rua.example", []string{"a.example", "c.example", "rua.example", "unverified.example"},
		map[string]string{"dmarc@a.example": "a/", "dmarc@c.example": "c/", "reports@rua.example": "rua/", "reports@unverified.example": "unverified/"})

	hist := filepath.Join(dir, "dmarc.dat")
	conf := filepath.Join(dir, "sidecar.conf")
	text := "primary_hostname = mx.example.net\nmilter_listen = inet:127.0.0.1:0\npolicy_listen =\ndns_servers = " + dns.Addr() +
		"\ndmarc_history_file = " + hist + "\ndmarc_history_format = sidecar\nreport_database = " + filepath.Join(dir, "reports.db") +
		"\nreport_smtp = " + rua.Addr + "\nreport_email = dmarc-reports@mx.example.net\nreport_org_name = Example Receiver\n" + chainACL
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var log testmta.SyncBuffer
	d, err := daemon.New(conf, acl.Default, &log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	mx := arcPostfix(t, "mx.example.net", d.Addrs("milter_listen")[0].String(), testmta.StartSink(t).Addr())

	mix := []chainMessage{
		{3, "127.0.0.3", "a.example", true, false},  // DMARC pass by DKIM (SPF fails)
		{2, "127.0.0.2", "a.example", true, false},  // pass by both
		{2, "127.0.0.4", "a.example", false, true},  // fails, p=reject: refused
		{2, "127.0.0.3", "b.example", false, false}, // pass by SPF
		{1, "127.0.0.5", "b.example", false, false}, // fails, p=quarantine: quarantined
		{2, "127.0.0.2", "c.example", false, false}, // fails, p=none: delivered
	}
	sent := 0
	for _, m := range mix {
		for i := 0; i < m.n; i++ {
			sent++
			err := chainSend(t, mx, m, key, sent)
			if m.refused != (err != nil) || (err != nil && !strings.Contains(err.Error(), "5.7.1 DMARC policy of "+m.from)) {
				t.Fatalf("message %d from %s at %s: %v\n%s", sent, m.ip, m.from, err, log.String())
			}
		}
	}
	waitUntil(t, fmt.Sprintf("%d history records", sent), func() bool {
		b, _ := os.ReadFile(hist)
		return strings.Count("\n"+string(b), "\njob ") == sent
	})

	if code, out, errs := runCmd("report", "import", "-config", conf); code != 0 || !strings.Contains(out, fmt.Sprintf(": %d records, %d added,", sent, sent)) {
		t.Fatalf("import: %d\n%s%s", code, out, errs)
	}
	begin := start.UTC().Truncate(time.Hour)
	end := begin.Add(2 * time.Hour)
	aggregateArgs := []string{"report", "aggregate", "-config", conf, "-send", "-begin", strconv.FormatInt(begin.Unix(), 10), "-end", strconv.FormatInt(end.Unix(), 10)}
	code, out, errs := runCmd(aggregateArgs...)
	t.Logf("aggregate -send:\n%s%s", out, errs)
	if code != 1 || strings.Count(out, ": sent\n") != 3 || strings.Count(errs, "\n") != 1 ||
		!strings.Contains(errs, "b.example mailto:reports@unverified.example: failed: destination not verified") {
		t.Fatalf("aggregate -send: exit %d, want 1 with three reports sent and the unverified destination failed", code)
	}

	want := map[string][]string{
		"a": {
			"127.0.0.2 2 pass dkim=pass spf=pass dkim:a.example/s1=pass spf:a.example/mfrom=pass",
			"127.0.0.3 3 pass dkim=pass spf=fail dkim:a.example/s1=pass spf:a.example/mfrom=fail",
			"127.0.0.4 2 reject dkim=fail spf=fail spf:a.example/mfrom=fail",
		},
		"rua": {
			"127.0.0.3 2 pass dkim=fail spf=pass spf:b.example/mfrom=pass",
			"127.0.0.5 1 quarantine dkim=fail spf=fail spf:b.example/mfrom=fail",
		},
		"c": {"127.0.0.2 2 none dkim=fail spf=fail spf:c.example/mfrom=fail"},
	}
	policy := map[string]string{"a": "reject", "rua": "quarantine", "c": "none"}
	domain := map[string]string{"a": "a.example", "rua": "b.example", "c": "c.example"}
	counted := 0
	for box, records := range want {
		mails := waitMaildir(t, rua, box, 1)
		fb, _ := openReportMail(t, mails[0], domain[box], begin, end)
		if fb.Policy.Domain != domain[box] || fb.Policy.P != policy[box] || fb.Metadata.OrgName != "Example Receiver" {
			t.Errorf("%s: policy_published %+v, metadata %+v", box, fb.Policy, fb.Metadata)
		}
		var got []string
		for _, rec := range fb.Records {
			got = append(got, chainLine(rec, domain[box]))
			counted += int(rec.Row.Count)
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(records, "\n") {
			t.Errorf("%s: records\n%s\nwant\n%s", box, strings.Join(got, "\n"), strings.Join(records, "\n"))
		}
	}
	if counted != sent {
		t.Errorf("the reports count %d messages, %d were sent", counted, sent)
	}

	// The second run: nothing is sent, nobody is even connected to.
	connects := strings.Count(rua.Log(), "postfix/smtpd")
	code, out, errs = runCmd(aggregateArgs...)
	if code != 0 || strings.Contains(out, "sent") || errs != "" || strings.Count(rua.Log(), "postfix/smtpd") != connects {
		t.Errorf("second run: exit %d\n%s%s", code, out, errs)
	}
	for box, n := range map[string]int{"a": 1, "rua": 1, "c": 1, "unverified": 0} {
		if files, _ := filepath.Glob(filepath.Join(rua.Base, box, "new", "*")); len(files) != n {
			t.Errorf("%s: %d mails, want %d", box, len(files), n)
		}
	}
	if strings.Contains(rua.Log(), "unverified.example") {
		t.Errorf("the unverified destination was mailed:\n%s", rua.Log())
	}
	t.Logf("%d messages, 3 reports delivered in %v", sent, time.Since(start).Round(time.Millisecond))
}

// chainSend submits message number n of kind m to the MX from m.ip.
func chainSend(t *testing.T, mx string, m chainMessage, key ed25519.PrivateKey, n int) error {
	t.Helper()
	msg := fmt.Sprintf("From: Alice <alice@%s>\r\nTo: Bob <bob@example.org>\r\nSubject: message %d\r\nDate: %s\r\nMessage-ID: <%d.%d@%s>\r\n\r\nHello %d.\r\n",
		m.from, n, time.Now().Format(time.RFC1123Z), n, time.Now().UnixNano(), m.from, n)
	if m.signed {
		var b strings.Builder
		if err := msgdkim.Sign(&b, strings.NewReader(msg), &msgdkim.SignOptions{Domain: m.from, Selector: "s1", Signer: key,
			HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
			t.Fatal(err)
		}
		msg = b.String()
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(m.ip)}, Timeout: 5 * time.Second}
	return testmta.Submit(mx, testmta.Submission{Helo: "mail." + m.from, From: "bounce@" + m.from, To: []string{"bob@example.org"},
		Data: []byte(msg), Dial: dialer.Dial})
}

// chainLine is a record as the test compares it; the identifiers are
// checked here.
func chainLine(rec aggregate.Record, domain string) string {
	ev := rec.Row.Evaluated
	line := fmt.Sprintf("%s %d %s dkim=%s spf=%s", rec.Row.SourceIP, rec.Row.Count, ev.Disposition, ev.DKIM, ev.SPF)
	for _, r := range ev.Reasons {
		line += " reason=" + r.Type
	}
	if id := rec.Identifiers; id != (aggregate.Identifiers{HeaderFrom: domain, EnvelopeFrom: domain, EnvelopeTo: "example.org"}) {
		line += fmt.Sprintf(" identifiers=%+v", id)
	}
	for _, d := range rec.AuthResults.DKIM {
		line += " dkim:" + d.Domain + "/" + d.Selector + "=" + d.Result
	}
	if s := rec.AuthResults.SPF; s != nil {
		line += " spf:" + s.Domain + "/" + s.Scope + "=" + s.Result
	}
	return line
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
	}
}

// waitMaildir waits until mailbox box of mds holds n mails and returns
// them.
func waitMaildir(t *testing.T, mds *testmta.Maildirs, box string, n int) []string {
	t.Helper()
	var files []string
	waitUntil(t, fmt.Sprintf("%d mails in %s", n, box), func() bool {
		files, _ = filepath.Glob(filepath.Join(mds.Base, box, "new", "*"))
		return len(files) >= n
	})
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}
