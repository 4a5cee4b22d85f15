package milter

import (
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/dsninfo"
	"github.com/mailsidecar/sidecar/internal/testkit/testexim"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// Bounces written by real MTAs: Postfix, Exim and Sendmail refuse to
// deliver to a next hop that refuses a recipient, and bounce; the bounces
// pass through the milter or are parsed by dsninfo, and are kept as
// samples in dsninfo/testdata (DSN_SAMPLES=1).

// refusingSink is a next hop that refuses some recipients: gone@… with
// 550 5.1.1, slow@… with 450 4.2.1; it accepts the others and hands
// their messages over on msgs. It offers no DSN extension, so an MTA
// relaying to it reports NOTIFY=SUCCESS as "relayed".
func refusingSink(t *testing.T) (addr string, msgs <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan string, 20)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveRefusing(c, ch)
		}
	}()
	return l.Addr().String(), ch
}

func serveRefusing(c net.Conn, ch chan<- string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	tp := textproto.NewConn(c)
	tp.PrintfLine("220 sink.example.org ESMTP refusing sink")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		upper := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(upper, "EHLO"), strings.HasPrefix(upper, "HELO"):
			tp.PrintfLine("250-sink.example.org")
			tp.PrintfLine("250 8BITMIME")
		case strings.HasPrefix(upper, "RCPT") && strings.Contains(upper, "<GONE@"):
			tp.PrintfLine("550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown")
		case strings.HasPrefix(upper, "RCPT") && strings.Contains(upper, "<SLOW@"):
			tp.PrintfLine("450 4.2.1 <slow@example.org>: mailbox busy, try later")
		case upper == "DATA":
			tp.PrintfLine("354 go on")
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			ch <- strings.Join(lines, "\r\n") + "\r\n"
			tp.PrintfLine("250 2.0.0 queued")
		case upper == "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

// TestPostfixBounceThroughMilter is the proof with real Postfix: a
// message relayed to a next hop that refuses one recipient (550 5.1.1),
// defers another (450) and accepts a third that asked for NOTIFY=SUCCESS.
// Postfix generates a bounce, a success notice (relayed) and a delay
// warning; with internal_mail_filter_classes = bounce and
// non_smtpd_milters they pass through the milter, which logs a
// msg=bounce line with Status 5.1.1, the Remote-MTA, the diagnostic and
// the original Message-ID. The RFC 3461 parameters of the original
// message are in its transaction line. The notices Postfix wrote, as the
// sink received them, are parsed again with dsninfo.
func TestPostfixBounceThroughMilter(t *testing.T) {
	needPostfix(t)
	h := dsnHarness(t)
	sinkAddr, msgs := refusingSink(t)
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))
	main := append(milterMain(h.addr, sinkAddr),
		"non_smtpd_milters = inet:"+h.addr,
		"internal_mail_filter_classes = bounce",
		"delay_warning_time = 1s",
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	)
	testmta.Start(t, testmta.Config{Name: "dsn", Listen: []string{smtpAddr}, Main: main})

	sendWithDSNParams(t, smtpAddr, "MAIL FROM:<alice@example.com> RET=HDRS ENVID=ENV+2B7", []string{
		"RCPT TO:<gone@example.org> NOTIFY=FAILURE ORCPT=rfc822;gone+40example.org",
		"RCPT TO:<ok@example.org> NOTIFY=SUCCESS,FAILURE",
		"RCPT TO:<slow@example.org> NOTIFY=DELAY,FAILURE",
	}, "will bounce", "orig-dsn-1@example.com")

	// What the sink gets for alice: the original for ok@, and the notices.
	var notices []*dsninfo.Report
	kinds := map[dsninfo.Action]bool{}
	deadline := time.After(60 * time.Second)
	for !(kinds[dsninfo.Failed] && kinds[dsninfo.Relayed] && kinds[dsninfo.Delayed]) {
		select {
		case m := <-msgs:
			r, err := dsninfo.Parse(strings.NewReader(m), dsninfo.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != dsninfo.DSN {
				continue
			}
			notices = append(notices, r)
			for _, rc := range r.Recipients {
				kinds[rc.Action] = true
			}
			if os.Getenv("DSN_SAMPLES") != "" { // refresh dsninfo/testdata from real Postfix
				os.WriteFile(filepath.Join("..", "dsninfo", "testdata", "postfix-"+string(r.Recipients[0].Action)+".eml"), []byte(m), 0o644)
			}
		case <-deadline:
			t.Fatalf("notices by action %v after 60s; log:\n%s", kinds, h.logs.String())
		}
	}
	for _, r := range notices {
		if r.OriginalEnvelopeID != "ENV+7" || r.Original.MessageID != "orig-dsn-1@example.com" || r.ReportingMTA.Value != "mx.example.net" {
			t.Errorf("notice: envid %q, original %q, reporting MTA %q", r.OriginalEnvelopeID, r.Original.MessageID, r.ReportingMTA)
		}
	}

	// The milter's lines: the original's transaction line with the DSN
	// parameters, and a bounce line for gone@.
	var bounce map[string]any
	for end := time.Now().Add(20 * time.Second); bounce == nil && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, b := range h.logs.records("bounce") {
			if b["recipient"] == "gone@example.org" {
				bounce = b
			}
		}
	}
	if bounce == nil {
		t.Fatalf("no bounce line for gone@example.org; log:\n%s", h.logs.String())
	}
	for k, v := range map[string]any{"kind": "dsn", "action": "failed", "status": "5.1.1", "remote_mta": "127.0.0.1",
		"original_message_id": "orig-dsn-1@example.com", "original_envid": "ENV+7", "reporting_mta": "mx.example.net",
		"original_recipient": "gone@example.org",
		"diagnostic":         "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"} {
		if bounce[k] != v {
			t.Errorf("bounce line: %s = %v, want %v", k, bounce[k], v)
		}
	}
	t.Logf("bounce line: %v", bounce)
	if bounce["queue_id"] == nil || bounce["queue_id"] == "" {
		t.Errorf("bounce line without queue_id: %v", bounce)
	}
	var orig map[string]any
	for _, tx := range h.logs.records("transaction") {
		if tx["sender"] == "alice@example.com" {
			orig = tx
		}
	}
	d, _ := orig["dsn"].(map[string]any)
	if d["ret"] != "HDRS" || d["envid"] != "ENV+7" ||
		fmt.Sprint(d["notify"]) != "[gone@example.org FAILURE ok@example.org SUCCESS,FAILURE slow@example.org DELAY,FAILURE]" ||
		fmt.Sprint(d["orcpt"]) != "[gone@example.org rfc822;gone@example.org]" {
		t.Errorf("original's transaction line: dsn = %v", orig["dsn"])
	}
	// The delay warning and the success notice went through the milter
	// as well: a bounce line for slow@ (delayed); none for ok@ (relayed).
	var delayed, relayed bool
	for _, b := range h.logs.records("bounce") {
		delayed = delayed || (b["recipient"] == "slow@example.org" && b["action"] == "delayed" && b["status"] == "4.2.1")
		relayed = relayed || b["recipient"] == "ok@example.org"
	}
	if !delayed || relayed {
		t.Errorf("bounce lines: delayed slow@ %v (want true), ok@ %v (want false)\n%s", delayed, relayed, h.logs.String())
	}
}

// eximBounceConf routes every address to the refusing sink: a message
// for gone@example.org is refused there (550 5.1.1) and Exim's bounce
// to alice@example.com goes to the sink as well.
const eximBounceConf = `primary_hostname = mx.example.net
qualify_domain = example.com
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
exim_path = @BIN@
keep_environment =
dsn_advertise_hosts = *
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = accept_all

begin acl
accept_all:
  accept

begin routers
to_sink:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = sink_smtp

begin transports
sink_smtp:
  driver = smtp
  port = @PORT@
  allow_localhost

begin retry
* * F,1m,1m
`

// eximBounce has a private Exim relay a message to the refusing sink,
// which refuses it (550 5.1.1), and returns the bounce Exim sent back
// to the sender, as the sink received it, and what exim -bV says of the
// build.
func eximBounce(t *testing.T) (bounce, version string) {
	bin := testexim.Binary(t)
	sinkAddr, msgs := refusingSink(t)
	_, port, _ := net.SplitHostPort(sinkAddr)
	dir := openTempDir(t, "sidecar-exim-")
	for _, d := range []string{"spool", "log"} {
		// Exim writes them as the Debian-exim user.
		os.Mkdir(filepath.Join(dir, d), 0o755)
		os.Chmod(filepath.Join(dir, d), 0o777)
	}
	conf := strings.NewReplacer("@DIR@", dir, "@PORT@", port, "@BIN@", testexim.ExecPath(bin, dir)).Replace(eximBounceConf)
	if err := os.WriteFile(filepath.Join(dir, "exim.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	testexim.WriteUsers(t, dir)
	version = testexim.Run(t, bin, dir, "", "-bV")
	// An SMTP session on standard input (-bs) with the RFC 3461
	// parameters; -odi delivers before the reply to the end of data.
	session := "EHLO client.example.com\r\n" +
		"MAIL FROM:<alice@example.com> RET=HDRS ENVID=EXIM+2B1\r\n" +
		"RCPT TO:<gone@example.org> NOTIFY=FAILURE ORCPT=rfc822;gone@example.org\r\n" +
		"DATA\r\n" +
		"From: alice@example.com\r\nTo: gone@example.org\r\nSubject: will bounce at Exim\r\nMessage-ID: <orig-exim-1@example.com>\r\n\r\nhello\r\n.\r\n" +
		"QUIT\r\n"
	out := testexim.Run(t, bin, dir, session, "-bs", "-odi")
	select {
	case m := <-msgs:
		return m, version
	case <-time.After(30 * time.Second):
		mainlog, _ := os.ReadFile(filepath.Join(dir, "log", "mainlog"))
		paniclog, _ := os.ReadFile(filepath.Join(dir, "log", "paniclog"))
		t.Fatalf("no bounce at the sink after 30s; exim -bs:\n%s\nmainlog:\n%s\npaniclog:\n%s", out, mainlog, paniclog)
	}
	return "", ""
}

// TestEximBounce is the proof with real Exim: Debian's Exim 4.96 relays
// a message to a next hop that refuses it (550 5.1.1) and bounces it;
// dsninfo reads the bounce. Exim writes the seed's X- fields
// (X-Remote-MTA-smtp-greeting, X-Remote-MTA-helo-response,
// X-Exim-Diagnostic, Remote-MTA: X-ip) only when built with
// EXPERIMENTAL_DSN_INFO, which exim -bV lists as Experimental_DSN_info:
// with such a build the test asserts they are parsed, without it that
// the bounce has none. The bounce then goes through a Postfix whose
// milter is set with plain smtpd_milters, as a bounce from another host
// arrives: the milter logs its msg=bounce line.
func TestEximBounce(t *testing.T) {
	m, version := eximBounce(t)
	r, rc := readRealBounce(t, m, "exim-failed.eml")
	for _, c := range []fieldCheck{
		{"Reporting-MTA", r.ReportingMTA.Value, "mx.example.net"},
		// Exim writes ENVID as it came, in xtext (Postfix decodes it).
		{"Original-Envelope-Id", r.OriginalEnvelopeID, "EXIM+2B1"},
		{"Final-Recipient", rc.FinalRecipient.Value, "gone@example.org"},
		{"Original-Recipient", rc.OriginalRecipient.Value, "gone@example.org"},
		{"Action", string(rc.Action), "failed"},
		// Exim 4.96 gives 5.0.0 whatever the reply's enhanced code.
		{"Status", rc.Status.String(), "5.0.0"},
		{"Remote-MTA", rc.RemoteMTA.Value, "127.0.0.1"},
		{"Diagnostic-Code", rc.DiagnosticCode.Value, "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"},
		{"original Message-ID", r.Original.MessageID, "orig-exim-1@example.com"},
		{"original Subject", r.Original.Subject, "will bounce at Exim"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if strings.Contains(version, "Experimental_DSN_info") {
		if rc.RemoteIP == "" || !strings.HasPrefix(rc.RemoteSMTPGreeting, "220 sink.example.org") ||
			!strings.HasPrefix(rc.RemoteHeloResponse, "250") || rc.ReportingDiagnostic == "" {
			t.Errorf("Exim built with DSN info: X- fields %+v", rc)
		}
	} else {
		for _, f := range []string{"X-Remote-MTA-smtp-greeting", "X-Remote-MTA-helo-response", "X-Exim-Diagnostic", "X-ip"} {
			if strings.Contains(m, f) {
				t.Errorf("Exim without Experimental_DSN_info wrote %s:\n%s", f, m)
			}
		}
		t.Logf("this Exim is built without EXPERIMENTAL_DSN_INFO: no X- fields in its bounces")
	}
	t.Run("through Postfix smtpd_milters", func(t *testing.T) {
		b := bounceThroughPostfix(t, m, "gone@example.org")
		for k, v := range map[string]any{"kind": "dsn", "action": "failed", "status": "5.0.0", "remote_mta": "127.0.0.1",
			"original_message_id": "orig-exim-1@example.com", "original_envid": "EXIM+2B1", "reporting_mta": "mx.example.net",
			"diagnostic": "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"} {
			if b[k] != v {
				t.Errorf("bounce line: %s = %v, want %v", k, b[k], v)
			}
		}
	})
}

// bounceThroughPostfix hands a bounce to a private Postfix over SMTP
// with the null sender, as a bounce from another host arrives; its
// milter is set with nothing but smtpd_milters (milterMain). It returns
// the milter's msg=bounce line for rcpt.
func bounceThroughPostfix(t *testing.T, bounce, rcpt string) map[string]any {
	needPostfix(t)
	h := dsnHarness(t)
	sinkAddr, _ := refusingSink(t)
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))
	testmta.Start(t, testmta.Config{Name: "inbound-bounce", Listen: []string{smtpAddr}, Main: milterMain(h.addr, sinkAddr)})
	return submitBounce(t, h, smtpAddr, bounce, rcpt)
}

// submitBounce sends bounce over SMTP to the MTA at addr, from <> to
// alice@example.com, and returns the msg=bounce line for rcpt that the
// milter of h logs.
func submitBounce(t *testing.T, h *harness, addr, bounce, rcpt string) map[string]any {
	c := dialSMTP(t, addr)
	c.must(250, "EHLO relay.example.net")
	if code, text := c.send("", []string{"alice@example.com"}, bounce); code != 250 {
		t.Fatalf("bounce refused: %d %s", code, text)
	}
	c.cmd("QUIT")
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, b := range h.logs.records("bounce") {
			if b["recipient"] == rcpt {
				return b
			}
		}
	}
	t.Fatalf("no bounce line for %s; log:\n%s", rcpt, h.logs.String())
	return nil
}

// readRealBounce parses a bounce a real MTA wrote for one recipient,
// keeping it as dsninfo/testdata/sample when DSN_SAMPLES is set.
func readRealBounce(t *testing.T, m, sample string) (*dsninfo.Report, dsninfo.Recipient) {
	t.Helper()
	if os.Getenv("DSN_SAMPLES") != "" { // refresh dsninfo/testdata from a real MTA
		os.WriteFile(filepath.Join("..", "dsninfo", "testdata", sample), []byte(m), 0o644)
	}
	r, err := dsninfo.Parse(strings.NewReader(m), dsninfo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != dsninfo.DSN || len(r.Recipients) != 1 {
		t.Fatalf("bounce read as %s with %d recipients:\n%s", r.Kind, len(r.Recipients), m)
	}
	return r, r.Recipients[0]
}

// fieldCheck is a field of a parsed report and the value it should have.
type fieldCheck struct{ what, got, want string }

// sendWithDSNParams sends a message from alice@example.com to
// gone@example.org with the MAIL and RCPT commands given (their RFC 3461
// parameters), the subject and Message-ID given.
func sendWithDSNParams(t *testing.T, addr, mail string, rcpts []string, subject, msgID string) {
	t.Helper()
	c := dialSMTP(t, addr)
	c.must(250, "EHLO client.example.com")
	c.must(250, "%s", mail)
	for _, r := range rcpts {
		c.must(250, "%s", r)
	}
	c.must(354, "DATA")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: alice@example.com\r\nTo: gone@example.org\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nhello\r\n", subject, msgID)
	w.Close()
	if code, text, err := c.tp.ReadResponse(250); err != nil {
		t.Fatalf("end of data: %d %s: %v", code, text, err)
	}
	c.cmd("QUIT")
}
