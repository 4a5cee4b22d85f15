package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// equivConf exercises every kind of outcome: refusal and discard at RCPT,
// deny on DMARC at DATA, quarantine with a header, a header on every
// accepted message, forged Authentication-Results removed.
const equivConf = `primary_hostname = mx.example.net
authres_strip_ids = old.example
acl_smtp_rcpt = rcpt
acl_smtp_data = data
begin acl
rcpt:
  deny    recipients = nobody@example.org
          message    = 550 5.1.1 no such user
  discard recipients = discard@example.org
  accept
data:
  deny    dmarc_status = reject
          message      = 550 5.7.1 DMARC policy of $dmarc_used_domain says reject
  accept  condition    = ${if eq{$h_subject:}{quarantine me}}
          control      = quarantine/held for review
          add_header   = X-Held: yes
  warn    add_header   = X-Auth: spf=$spf_result dkim=$dkim_verify_status dmarc=$dmarc_status arc=$arc_state
  accept
`

// equivMessage is one SMTP transaction of the equivalence test.
type equivMessage struct {
	name   string
	ip     string
	helo   string
	sender string
	rcpts  []string
	msg    string // CRLF
}

// equivOutcome is what the MTA is told to do with a message, in a form
// both paths give: the verdict, the fields that end on top of the header
// (top first), those appended, those removed, recipients removed,
// quarantine.
type equivOutcome struct {
	Verdict    string
	Top, End   []string
	Removed    []string
	Rcpts      []string
	Quarantine string
}

// TestDaemonAndCheckAgree runs messages through the daemon (its own
// process, over a real milter connection) and through "sidecar check"
// (the command's own code path), and compares the verdicts, the header
// edits, and the Authentication-Results header byte for byte: both go
// through the one stage driver.
func TestDaemonAndCheckAgree(t *testing.T) {
	bin := buildBinary(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	zone := checkZone(t, key)
	arcPub, arcKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	zone.AddRecord(resolver.Record{Name: "l1._domainkey.lists.example", Type: resolver.TypeTXT,
		TXT: []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(arcPub)}})
	srv := dnstest.NewServer(t, zone)
	dir := t.TempDir()
	confPath := filepath.Join(dir, "sidecar.conf")
	conf := "milter_listen = inet:127.0.0.1:0\npolicy_listen =\ndns_servers = " + srv.Addr() + "\n" + equivConf
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	plain := crlf(checkMsg)
	var signed bytes.Buffer
	if err := msgdkim.Sign(&signed, strings.NewReader(plain), &msgdkim.SignOptions{Domain: "sender.example", Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
		t.Fatal(err)
	}
	chain, err := (&arc.Validator{DNS: zone}).Validate(t.Context(), strings.NewReader(signed.String()))
	if err != nil {
		t.Fatal(err)
	}
	set, err := (&arc.Signer{Domain: "lists.example", Selector: "l1", Key: arcKey}).Seal([]byte(signed.String()), chain,
		"lists.example; dkim=pass header.d=sender.example; dmarc=pass header.from=sender.example")
	if err != nil {
		t.Fatal(err)
	}
	sealed := strings.Join(set, "\r\n") + "\r\n" + signed.String()

	good, spoof := "192.0.2.10", "203.0.113.9"
	messages := []equivMessage{
		{"accepted", good, "mail.sender.example", "alice@sender.example", []string{"bob@example.org"}, plain},
		{"refused at RCPT", good, "mail.sender.example", "alice@sender.example", []string{"nobody@example.org"}, plain},
		{"one recipient refused", good, "mail.sender.example", "alice@sender.example", []string{"nobody@example.org", "bob@example.org"}, plain},
		{"discarded", good, "mail.sender.example", "alice@sender.example", []string{"discard@example.org"}, plain},
		{"one recipient discarded", good, "mail.sender.example", "alice@sender.example", []string{"discard@example.org", "bob@example.org"}, plain},
		{"denied by DMARC", spoof, "evil.example", "alice@sender.example", []string{"bob@example.org"}, plain},
		{"quarantined", good, "mail.sender.example", "alice@sender.example", []string{"bob@example.org"},
			strings.Replace(plain, "Subject: lunch", "Subject: quarantine me", 1)},
		{"forged Authentication-Results", good, "mail.sender.example", "alice@sender.example", []string{"bob@example.org"},
			"Authentication-Results: mx.example.net; dkim=pass header.d=sender.example\r\n" +
				"Authentication-Results: old.example; spf=pass\r\n" +
				"Authentication-Results: other.example; spf=fail\r\n" + plain},
		{"DKIM-signed from elsewhere", spoof, "mail.sender.example", "alice@sender.example", []string{"bob@example.org"}, signed.String()},
		{"ARC-sealed", spoof, "lists.example", "list-bounces@lists.example", []string{"bob@example.org"}, sealed},
	}

	d := startDaemon(t, bin, "-config", confPath)
	addr := d.boundAddr("milter_listen")
	d.waitFor(`sidecar started`)

	cfg, prog, err := daemon.Load(confPath, acl.Default)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := daemon.Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range messages {
		t.Run(m.name, func(t *testing.T) {
			queueID := fmt.Sprintf("EQ%d", i)
			wire, wireAR := viaMilter(t, addr, m, queueID)
			checked, checkedAR := viaCheck(t, rt, m, queueID)
			if fmt.Sprint(wire) != fmt.Sprint(checked) {
				t.Errorf("the daemon and sidecar check disagree:\ndaemon: %+v\ncheck:  %+v", wire, checked)
			}
			file := filepath.Join(dir, fmt.Sprintf("m%d.eml", i))
			if err := os.WriteFile(file, []byte(m.msg), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd("check", "-ip", m.ip, "-helo", m.helo, "-sender", m.sender, "-rcpt", strings.Join(m.rcpts, ","),
				"-queue-id", queueID, "-dns", srv.Addr(), "-config", confPath, file)
			if code != 0 && code != 1 {
				t.Fatalf("sidecar check: exit %d\n%s%s", code, out, errs)
			}
			printed := ""
			if i := strings.LastIndex(out, "\nAuthentication-Results:"); i >= 0 {
				printed = strings.TrimSuffix(out[i+1:], "\n")
			}
			if printed != checkedAR || printed != wireAR {
				t.Errorf("Authentication-Results differ:\ndaemon: %q\ncheck:  %q\nprinted: %q", wireAR, checkedAR, printed)
			}
			if (code == 0) != (wire.Verdict == "accept") {
				t.Errorf("sidecar check exit %d, daemon verdict %s", code, wire.Verdict)
			}
			t.Logf("%+v\n%s", wire, wireAR)
		})
	}
	// The transaction lines carry the results (README "Logging").
	line := d.waitFor(`queue_id=EQ9 `)
	for _, want := range []string{`verdict=accept`, `message_id=1@sender.example`, `from_domain=sender.example`,
		`spf.result=none spf.domain=lists.example spf.identity=mailfrom`, `dkim=sender.example:sel:pass`,
		`dmarc.result=pass dmarc.policy=reject dmarc.disposition=none dmarc.policy_domain=sender.example dmarc.align_spf=no dmarc.align_dkim=yes`,
		`arc.state=pass arc.oldest_pass=1 arc.sealers=lists.example`} {
		if !strings.Contains(line, want) {
			t.Errorf("the transaction line lacks %q:\n%s", want, line)
		}
	}
	if code := d.stop(); code != 0 {
		t.Errorf("daemon exit %d", code)
	}
}

// viaMilter sends the message to the daemon as an MTA would, and returns
// what the daemon said and its Authentication-Results field as printed by
// sidecar check (LF line ends).
func viaMilter(t *testing.T, addr string, m equivMessage, queueID string) (equivOutcome, string) {
	t.Helper()
	c := gomilter.NewClientWithOptions("tcp", addr, gomilter.ClientOptions{
		Dialer:       &net.Dialer{Timeout: 5 * time.Second},
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		ActionMask:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptRemoveRcpt | gomilter.OptQuarantine,
	})
	defer c.Close()
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(what string) func(*gomilter.Action, error) *gomilter.Action {
		return func(act *gomilter.Action, err error) *gomilter.Action {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return act
		}
	}
	must("connect")(s.Conn("client.example", gomilter.FamilyInet, 40000, m.ip))
	must("helo")(s.Helo(m.helo))
	if err := s.Macros(gomilter.CodeMail, "i", queueID); err != nil {
		t.Fatal(err)
	}
	must("mail")(s.Mail("<"+m.sender+">", nil))
	accepted := 0
	for _, r := range m.rcpts {
		if act := must("rcpt")(s.Rcpt("<"+r+">", nil)); act.Code == gomilter.ActContinue {
			accepted++
		}
	}
	var out equivOutcome
	if accepted == 0 {
		s.Abort()
		out.Verdict = "no recipient"
		return out, ""
	}
	hdr, body, _ := strings.Cut(m.msg, "\r\n\r\n")
	for _, f := range splitFields(hdr) {
		// Without SMFIP_HDR_LEADSPC an MTA sends the value without the
		// space after the colon.
		name, value, _ := strings.Cut(f, ":")
		must("header")(s.HeaderField(name, strings.TrimPrefix(value, " ")))
	}
	must("end of headers")(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch act.Code {
	case gomilter.ActContinue, gomilter.ActAccept:
		out.Verdict = "accept"
	case gomilter.ActDiscard:
		out.Verdict = "discard"
	case gomilter.ActTempFail:
		out.Verdict = "tempfail"
	case gomilter.ActReplyCode:
		out.Verdict = fmt.Sprintf("reply %d", act.SMTPCode)
	default:
		out.Verdict = fmt.Sprintf("action %c", act.Code)
	}
	ar := ""
	for _, mod := range mods {
		value := strings.ReplaceAll(strings.TrimLeft(mod.HeaderValue, " "), "\r\n", "\n")
		switch mod.Code {
		case gomilter.ActInsertHeader:
			if mod.HeaderIndex != 0 {
				t.Errorf("header inserted at %d, not at the top", mod.HeaderIndex)
			}
			out.Top = append([]string{mod.HeaderName + ": " + value}, out.Top...)
			if mod.HeaderName == "Authentication-Results" {
				ar = "Authentication-Results: " + value
			}
		case gomilter.ActAddHeader:
			out.End = append(out.End, mod.HeaderName+": "+value)
		case gomilter.ActChangeHeader:
			if value != "" {
				t.Errorf("header changed, not removed: %+v", mod)
			}
			out.Removed = append(out.Removed, fmt.Sprintf("%s #%d", mod.HeaderName, mod.HeaderIndex))
		case gomilter.ActDelRcpt:
			out.Rcpts = append(out.Rcpts, strings.Trim(mod.Rcpt, "<>"))
		case gomilter.ActQuarantine:
			out.Quarantine = mod.Reason
		default:
			t.Errorf("unexpected modification %+v", mod)
		}
	}
	return out, ar
}

// viaCheck runs the message through sidecar check's driver and returns the
// same account.
func viaCheck(t *testing.T, rt *daemon.Runtime, m equivMessage, queueID string) (equivOutcome, string) {
	t.Helper()
	in := checkInput{ip: netip.MustParseAddr(m.ip), helo: m.helo, sender: m.sender, senderGiven: true, rcpts: m.rcpts, queueID: queueID}
	res := runCheck(rt, in, parseMessage([]byte(m.msg)), 30*time.Second)
	defer res.drv.Close()
	var out equivOutcome
	if res.end == nil {
		out.Verdict = "no recipient"
		return out, ""
	}
	switch v := res.end.Result.Verb; {
	case res.end.Discard || v == acl.Discard:
		out.Verdict = "discard"
	case v == acl.Accept:
		out.Verdict = "accept"
	case v == acl.Deny:
		out.Verdict = "reply 550"
	case v == acl.Defer:
		out.Verdict = "reply 451"
	default:
		out.Verdict = string(v)
	}
	e := res.end.Edits
	if e == nil {
		return out, ""
	}
	field := func(name, value string) string {
		return name + ": " + strings.ReplaceAll(strings.TrimLeft(value, " "), "\r\n", "\n")
	}
	ar := ""
	if e.AuthResults != nil {
		ar = field(e.AuthResults.Name, e.AuthResults.Value)
		out.Top = append(out.Top, ar)
	}
	for _, f := range e.AtStart {
		out.Top = append(out.Top, field(f.Name, f.Value))
	}
	for _, f := range e.AtEnd {
		out.End = append(out.End, field(f.Name, f.Value))
	}
	for _, f := range e.Delete {
		out.Removed = append(out.Removed, fmt.Sprintf("%s #%d", f.Name, f.Index))
	}
	out.Rcpts = append(out.Rcpts, e.RemoveRcpts...)
	if e.Quarantine {
		out.Quarantine = e.QuarantineReason
	}
	return out, ar
}

// splitFields splits a CRLF header into its fields, folding kept.
var fieldStart = regexp.MustCompile(`\r\n([^ \t])`)

func splitFields(hdr string) []string {
	return strings.Split(fieldStart.ReplaceAllString(hdr, "\x00$1"), "\x00")
}
