package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// TestDaemonMilterTransaction drives the running daemon's milter listener
// with a milter client, as Postfix would: configuration, ACLs and the milter
// front end together.
func TestDaemonMilterTransaction(t *testing.T) {
	bin := buildBinary(t)
	path := filepath.Join(t.TempDir(), "sidecar.conf")
	conf := `milter_listen = inet:127.0.0.1:0
policy_listen =
dns_servers = 127.0.0.1:1
authserv_id = mx.test.example
authres_strip_ids = old.example
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
begin acl
acl_check_rcpt:
  deny    local_parts = blocked
          message     = 550 5.7.1 no mail for $local_part
  accept
acl_check_data:
  warn    add_header  = X-Sidecar-Test: rcpts=$recipients_count from=$sender_address
  accept
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "-config", path)
	addr := d.boundAddr("milter_listen")
	d.waitFor(`sidecar started`)

	c := gomilter.NewClientWithOptions("tcp", addr, gomilter.ClientOptions{
		Dialer:       &net.Dialer{Timeout: 5 * time.Second},
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		ActionMask:   0x3f,
	})
	defer c.Close()
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustContinue := func(what string, act *gomilter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if act.Code != gomilter.ActContinue {
			t.Fatalf("%s: action %c, want continue", what, act.Code)
		}
	}
	act, err := s.Conn("client.example", gomilter.FamilyInet, 40000, "192.0.2.10")
	mustContinue("connect", act, err)
	act, err = s.Helo("client.example")
	mustContinue("helo", act, err)
	act, err = s.Mail("<alice@sender.example>", nil)
	mustContinue("mail", act, err)
	act, err = s.Rcpt("<blocked@test.example>", nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 || !strings.Contains(act.SMTPText, "no mail for blocked") {
		t.Fatalf("blocked recipient: %+v", act)
	}
	act, err = s.Rcpt("<bob@test.example>", nil)
	mustContinue("rcpt after a rejected one", act, err)
	act, err = s.HeaderField("From", " alice@sender.example")
	mustContinue("header", act, err)
	act, err = s.HeaderField("Authentication-Results", " old.example; spf=pass smtp.mailfrom=sender.example")
	mustContinue("forged header", act, err)
	act, err = s.HeaderEnd()
	mustContinue("end of headers", act, err)
	mods, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActContinue && act.Code != gomilter.ActAccept {
		t.Fatalf("end of message: action %c", act.Code)
	}
	var added []string
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader || m.Code == gomilter.ActInsertHeader {
			added = append(added, m.HeaderName+": "+strings.TrimLeft(m.HeaderValue, " "))
		}
	}
	all := strings.Join(added, "\n")
	removed := false
	for _, m := range mods {
		if m.Code == gomilter.ActChangeHeader && m.HeaderName == "Authentication-Results" && strings.TrimSpace(m.HeaderValue) == "" {
			removed = true
		}
	}
	if !removed {
		t.Errorf("the Authentication-Results header of authres_strip_ids was not removed: %+v", mods)
	}
	if !strings.Contains(all, "X-Sidecar-Test: rcpts=1 from=alice@sender.example") {
		t.Errorf("added headers lack the ACL's header (state lost after the rejected recipient?):\n%s", all)
	}
	if !strings.Contains(all, "Authentication-Results: mx.test.example") {
		t.Errorf("no Authentication-Results header:\n%s", all)
	}
	s.Close()
	c.Close()
	if code := d.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
}
