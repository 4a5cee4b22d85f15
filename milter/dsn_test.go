package milter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/dsninfo"
)

const dsnConf = `acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
  warn logwrite = rcpt $local_part notify=$dsn_notify orcpt=$dsn_orcpt ret=$dsn_ret envid=$dsn_envid
  accept
d:
  warn dsn_action = failed : delayed
       logwrite = bounce $dsn_kind $dsn_action $dsn_status ($dsn_status_text) $dsn_recipient via $dsn_remote_mta: $dsn_diagnostic; reporter $dsn_reporting_mta orig $dsn_original_message_id envid $dsn_original_envid
  warn dsn_action = none
       logwrite = no report
  accept
`

// dsnBody is a report in the shape Postfix writes, for two recipients:
// one refused, one delayed.
const dsnBody = "This is a MIME-encapsulated message.\r\n\r\n--B1\r\nContent-Type: text/plain\r\n\r\nbounced\r\n" +
	"--B1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\nOriginal-Envelope-Id: E42\r\n\r\n" +
	"Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\n" +
	"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected\r\n\r\n" +
	"Final-Recipient: rfc822; carol@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\nRemote-MTA: dns; mx2.example.org\r\n\r\n" +
	"--B1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig-7@example.com>\r\nFrom: alice@example.com\r\nSubject: hi\r\n\r\n--B1--\r\n"

// dsnHarness is a milter with the features registered and dsnConf.
func dsnHarness(t *testing.T) *harness {
	reg := acl.NewRegistry()
	quarantineControl(reg)
	checks.Register(reg)
	return newHarnessProgram(t, compileProgram(t, dsnConf, reg))
}

// dsnSession runs one message through a milter with dsnConf: envelope
// sends MAIL and RCPT, then the header fields and body go. It returns
// the harness, whose log holds the message's lines, and the message's
// transaction line.
func dsnSession(t *testing.T, envelope func(m *mta), headers []string, body string) (*harness, map[string]any) {
	h := dsnHarness(t)
	m := h.mta()
	m.connect("localhost", gomilter.FamilyInet, "127.0.0.1")
	m.helo("relay.example.net")
	envelope(m)
	_, act := m.data(headers, body)
	wantCode(t, act, gomilter.ActContinue, 0)
	m.s.Close()
	h.waitSessions(0)
	txn := h.logs.records("transaction")
	if len(txn) != 1 {
		t.Fatalf("%d transaction lines:\n%s", len(txn), h.logs.String())
	}
	return h, txn[0]
}

// TestDSNThroughMilter: a bounce with a null sender passing the milter
// is parsed: the DATA ACL sees $dsn_ variables and dsn_action, the
// transaction line says dsn.kind and dsn.bounced, and each failed or
// delayed recipient gets a msg=bounce line with the queue id and the
// original Message-ID.
func TestDSNThroughMilter(t *testing.T) {
	h, txn := dsnSession(t, func(m *mta) {
		m.mail("", "Q1")
		m.rcpt("alice@example.com")
	}, []string{"From", " MAILER-DAEMON@relay.example.net", "Message-ID", " <bounce-1@relay.example.net>",
		"Content-Type", " multipart/report; report-type=delivery-status;\n\tboundary=\"B1\""}, dsnBody)
	d, _ := txn["dsn"].(map[string]any)
	if d["kind"] != "dsn" || d["bounced"] != float64(2) {
		t.Errorf("dsn group %v", txn["dsn"])
	}
	logs := fmt.Sprint(txn["acl_logs"])
	for _, want := range []string{
		"bounce dsn failed 5.1.1 (permanent failure: bad destination mailbox address) bob@example.org via mx.example.org: 550 5.1.1 <bob@example.org>: Recipient address rejected; reporter relay.example.net orig orig-7@example.com envid E42",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("acl_logs lack %q: %s", want, logs)
		}
	}
	if strings.Contains(logs, "no report") {
		t.Errorf("dsn_action = none matched a report: %s", logs)
	}
	bounces := h.logs.records("bounce")
	if len(bounces) != 2 {
		t.Fatalf("%d bounce lines:\n%s", len(bounces), h.logs.String())
	}
	for i, want := range []map[string]any{
		{"recipient": "bob@example.org", "action": "failed", "status": "5.1.1", "remote_mta": "mx.example.org", "queue_id": "QID",
			"original_message_id": "orig-7@example.com", "message_id": "bounce-1@relay.example.net", "reporting_mta": "relay.example.net",
			"diagnostic": "550 5.1.1 <bob@example.org>: Recipient address rejected", "original_envid": "E42", "kind": "dsn", "verdict": "accept"},
		{"recipient": "carol@example.org", "action": "delayed", "status": "4.4.1", "status_text": "persistent transient failure: no answer from host"},
	} {
		for k, v := range want {
			if bounces[i][k] != v {
				t.Errorf("bounce line %d: %s = %v, want %v", i, k, bounces[i][k], v)
			}
		}
	}
}

// TestDSNParametersThroughMilter: the RFC 3461 parameters of MAIL and
// RCPT reach the ACLs and the transaction line; an ordinary message is
// not taken for a report.
func TestDSNParametersThroughMilter(t *testing.T) {
	h, txn := dsnSession(t, func(m *mta) {
		m.check(nil, m.s.Macros(gomilter.CodeMail, "i", "Q2"))
		m.check(m.s.Mail("alice@example.com", []string{"SIZE=100", "RET=HDRS", "ENVID=QQ+2B314159"}))
		m.check(m.s.Rcpt("bob@example.org", []string{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob+40example.org"}))
		m.check(m.s.Rcpt("carol@example.org", nil))
	}, []string{"From", " alice@example.com", "Subject", " Undelivered Mail Returned to Sender"}, "hello\r\n")
	d, _ := txn["dsn"].(map[string]any)
	if d["ret"] != "HDRS" || d["envid"] != "QQ+314159" || fmt.Sprint(d["notify"]) != "[bob@example.org SUCCESS,FAILURE]" ||
		fmt.Sprint(d["orcpt"]) != "[bob@example.org rfc822;bob@example.org]" || d["kind"] != nil {
		t.Errorf("dsn group %v", txn["dsn"])
	}
	logs := fmt.Sprint(txn["acl_logs"])
	for _, want := range []string{"rcpt bob notify=SUCCESS,FAILURE orcpt=rfc822;bob@example.org ret=HDRS envid=QQ+314159",
		"rcpt carol notify= orcpt= ret=HDRS", "no report"} {
		if !strings.Contains(logs, want) {
			t.Errorf("acl_logs lack %q: %s", want, logs)
		}
	}
	if n := len(h.logs.records("bounce")); n != 0 {
		t.Errorf("%d bounce lines for an ordinary message", n)
	}
}

// TestBounceLineText: the msg=bounce fields in the text format.
func TestBounceLineText(t *testing.T) {
	r, err := dsninfo.Parse(strings.NewReader("Content-Type: multipart/report; report-type=delivery-status; boundary=B1\r\n\r\n"+dsnBody), dsninfo.Limits{})
	if err != nil || r.Kind != dsninfo.DSN {
		t.Fatal(r, err)
	}
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).LogAttrs(context.Background(), slog.LevelInfo, "bounce", bounceAttrs(r, &r.Recipients[0])...)
	for _, want := range []string{"msg=bounce", "recipient=bob@example.org", "action=failed", "status=5.1.1",
		`status_text="permanent failure: bad destination mailbox address"`, "remote_mta=mx.example.org",
		`diagnostic="550 5.1.1 <bob@example.org>: Recipient address rejected"`, "original_message_id=orig-7@example.com"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text line lacks %q: %s", want, b.String())
		}
	}
}
