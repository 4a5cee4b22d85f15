package milter

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// seen is the X-Seen header testConf adds for a client at 192.0.2.10 that
// said HELO client.example.org and sent one message.
func seen(from, rcpts string, size int) string {
	return " ip=192.0.2.10 port=40000 name=client.example.org local=192.0.2.25:25 helo=client.example.org" +
		" from=" + from + " qid=QID tls=TLSv1.3/TLS_AES_256_GCM_SHA384/256 auth=alice rcpts=" + rcpts + " size=" + strconv.Itoa(size)
}

// msgSize is the size the milter counts: header fields with CRLF, the empty
// line, the body.
func msgSize(headers []string, body string) int {
	n := 2 + len(body)
	for i := 0; i+1 < len(headers); i += 2 {
		n += len(headers[i]) + 1 + len(headers[i+1]) + 2
	}
	return n
}

// Trap 1: go-milter replaces its macro map with every macro packet, so the
// connect macros are gone by MAIL. Here they reach the DATA ACL.
func TestTrapMacrosKeptPerStage(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	wantCode(t, m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10"), gomilter.ActContinue, 0)
	wantCode(t, m.helo("client.example.org"), gomilter.ActContinue, 0)
	wantCode(t, m.mail("sender@example.org", "QID"), gomilter.ActContinue, 0)
	wantCode(t, m.rcpt("rcpt@example.net"), gomilter.ActContinue, 0)
	hdrs := []string{"Subject", " hi"}
	mods, act := m.data(hdrs, "body\r\n")
	wantCode(t, act, gomilter.ActContinue, 0)
	got, ok := modValue(mods, "X-Seen")
	if want := seen("sender@example.org", "rcpt@example.net", msgSize(hdrs, "body\r\n")); !ok || got != want {
		t.Errorf("X-Seen:\n got %q\nwant %q", got, want)
	}
}

// Trap 2: go-milter replaces the handler after a reject or tempfail reply,
// which lost MAIL FROM after a rejected recipient and the client and HELO
// for the next message on the connection.
func TestTrapStateAfterRejectedRecipient(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")

	act := m.rcpt("nobody@example.net")
	wantCode(t, act, gomilter.ActReplyCode, 550)
	if act.SMTPText != "5.1.1 <nobody@example.net>: no such user" {
		t.Errorf("reject text %q", act.SMTPText)
	}
	wantCode(t, m.rcpt("later@example.net"), gomilter.ActReplyCode, 451)
	wantCode(t, m.rcpt("good@example.net"), gomilter.ActContinue, 0) // would defer "lost sender"
	hdrs := []string{"Subject", " one"}
	mods, act := m.data(hdrs, "")
	wantCode(t, act, gomilter.ActContinue, 0)
	if got, _ := modValue(mods, "X-Seen"); got != seen("sender@example.org", "good@example.net", msgSize(hdrs, "")) {
		t.Errorf("X-Seen after a rejected recipient: %q", got)
	}

	// The next message on the same connection keeps the client and HELO.
	wantCode(t, m.mail("second@example.org", "QID"), gomilter.ActContinue, 0)
	wantCode(t, m.rcpt("good@example.net"), gomilter.ActContinue, 0)
	mods, act = m.data(hdrs, "")
	wantCode(t, act, gomilter.ActContinue, 0)
	if got, _ := modValue(mods, "X-Seen"); got != seen("second@example.org", "good@example.net", msgSize(hdrs, "")) {
		t.Errorf("X-Seen of the second message: %q", got)
	}

	txns := h.waitRecords("transaction", 2)
	if r := txns[0]["rejected"]; !slices.Equal(anyStrings(r), []string{
		"nobody@example.net deny (r test.conf:27:3)", "later@example.net defer (r test.conf:29:3)"}) {
		t.Errorf("rejected = %v", r)
	}
}

// Trap 3: without ABORT between messages (Sendmail), go-milter's header map
// carried the first message's headers into the second.
func TestTrapNoAbortBetweenMessages(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")
	m.rcpt("good@example.net")
	_, act := m.data([]string{"X-First", " 1", "Authentication-Results", " mx.example.net; dkim=pass"}, "")
	wantCode(t, act, gomilter.ActContinue, 0)

	m.mail("sender@example.org", "QID")
	m.rcpt("good@example.net")
	mods, act := m.data([]string{"X-Second", " 2", "Authentication-Results", " mx.example.net; spf=pass"}, "")
	wantCode(t, act, gomilter.ActContinue, 0) // "header leaked" would deny
	if !slices.Contains(headerMods(mods), "change 1 Authentication-Results:") {
		t.Errorf("the forged header of the second message is its first: %q", headerMods(mods))
	}
}

// Trap 5: Sendmail sends IPv6 peers as "IPv6:..."; go-milter's net.ParseIP
// gave nil.
func TestTrapSendmailIPv6(t *testing.T) {
	h := newHarness(t, `
acl_smtp_data = d
begin acl
d:
  warn add_header = X-Client: [$sender_host_address] [$sender_host_name] [$received_ip_address] [$sender_host_port]
  accept
`)
	m := h.mta()
	m.check(nil, m.s.Macros(gomilter.CodeConn, "j", "mx.example.net", "_", "[IPv6:2001:db8::10]", "{if_addr}", "IPv6:2001:db8::25"))
	wantCode(t, m.check(m.s.Conn("[IPv6:2001:db8::10]", gomilter.FamilyInet6, 2525, "IPv6:2001:db8::10")), gomilter.ActContinue, 0)
	m.helo("client")
	m.mail("a@example.org", "Q")
	m.rcpt("b@example.net")
	mods, _ := m.data([]string{"Subject", " x"}, "")
	if got, _ := modValue(mods, "X-Client"); got != " [2001:db8::10] [] [2001:db8::25] [2525]" {
		t.Errorf("X-Client = %q", got)
	}
}

// Trap 6: Postfix accepts header edits only at end of message. Headers added
// by the MAIL and RCPT ACLs are queued (go-milter's client fails on a
// modification before end of message), and every edit comes before the
// final reply.
func TestTrapHeaderEditsAtEndOfMessage(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")
	m.rcpt("rcpt@example.net")
	hdrs := []string{
		"Subject", " hi",
		"X-Remove-Me", " a",
		"Authentication-Results", " mx.example.net; dkim=pass",
		"x-remove-me", " b",
	}
	mods, act := m.data(hdrs, "")
	wantCode(t, act, gomilter.ActContinue, 0)
	want := []string{
		"change 2 x-remove-me:",
		"change 1 X-Remove-Me:",
		"change 1 Authentication-Results:",
		"insert 0 X-Top: 2",
		"insert 0 X-Top: 1",
		"add X-From-Mail: yes",
		"add X-Rcpt: rcpt",
		"add X-Seen:" + seen("sender@example.org", "rcpt@example.net", msgSize(hdrs, "")),
		"insert 0 Authentication-Results: mx.example.net; none",
	}
	if got := headerMods(mods); !slices.Equal(got, want) {
		t.Errorf("modifications:\n got %q\nwant %q", got, want)
	}
}

// Trap 8: every listener gets its own go-milter server; serving two
// listeners at once is race-free.
func TestTrapServerPerListener(t *testing.T) {
	h := newHarness(t, testConf)
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(l2) }()
	addrs := []string{h.addr, l2.Addr().String()}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hh := &harness{t: t, srv: h.srv, addr: addrs[i%2]}
			m := hh.mta()
			m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
			m.helo("client.example.org")
			m.mail("sender@example.org", "QID")
			wantCode(t, m.rcpt("good@example.net"), gomilter.ActContinue, 0)
			_, act := m.data([]string{"Subject", " x"}, "")
			wantCode(t, act, gomilter.ActContinue, 0)
			m.s.Close()
		}()
	}
	wg.Wait()
	l2.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after its listener closed: %v", err)
	}
}

// A unix-domain listener works the same (no TCP options there).
func TestUnixSocket(t *testing.T) {
	h := newHarness(t, testConf)
	path := filepath.Join(t.TempDir(), "milter.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(l) }()
	c := gomilter.NewClientWithOptions("unix", path, gomilter.ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ActionMask: 0x3f})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	m := &mta{t: t, s: s}
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")
	m.rcpt("good@example.net")
	_, act := m.data([]string{"Subject", " x"}, "")
	wantCode(t, act, gomilter.ActContinue, 0)
	s.Close()
	l.Close()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestVerdicts(t *testing.T) {
	h := newHarness(t, testConf)
	start := func(ip string) *mta {
		m := h.mta()
		wantCode(t, m.connect("client.example.org", gomilter.FamilyInet, ip), gomilter.ActContinue, 0)
		wantCode(t, m.helo("client.example.org"), gomilter.ActContinue, 0)
		return m
	}
	t.Run("connect deny", func(t *testing.T) {
		m := h.mta()
		act := m.connect("bad.example", gomilter.FamilyInet, "192.0.2.66")
		wantCode(t, act, gomilter.ActReplyCode, 554)
		if act.SMTPText != "5.7.1 go away" {
			t.Errorf("text %q", act.SMTPText)
		}
	})
	t.Run("helo defer", func(t *testing.T) {
		m := h.mta()
		m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
		act := m.helo("slow.example")
		wantCode(t, act, gomilter.ActReplyCode, 451)
		if act.SMTPText != "4.7.1 Try again later" {
			t.Errorf("text %q", act.SMTPText)
		}
	})
	t.Run("mail discard", func(t *testing.T) {
		wantCode(t, start("192.0.2.10").mail("spam@example.org", "Q"), gomilter.ActDiscard, 0)
	})
	t.Run("mail deny default text", func(t *testing.T) {
		act := start("192.0.2.10").mail("bad@example.org", "Q")
		wantCode(t, act, gomilter.ActReplyCode, 550)
		if act.SMTPText != "5.7.1 Rejected by policy" {
			t.Errorf("text %q", act.SMTPText)
		}
	})
	t.Run("mail drop closes", func(t *testing.T) {
		m := start("192.0.2.10")
		act := m.mail("drop@example.org", "Q")
		wantCode(t, act, gomilter.ActReplyCode, 421)
		if act.SMTPText != "4.7.0 Connection closed by policy" {
			t.Errorf("text %q", act.SMTPText)
		}
		if _, err := m.s.Rcpt("x@example.net", nil); err == nil {
			t.Error("the connection is still open after drop")
		}
	})
	t.Run("rcpt drop closes", func(t *testing.T) {
		m := start("192.0.2.10")
		m.mail("a@example.org", "Q")
		act := m.rcpt("dropme@example.net")
		wantCode(t, act, gomilter.ActReplyCode, 421)
		if act.SMTPText != "4.7.0 too many errors" {
			t.Errorf("text %q", act.SMTPText)
		}
		if _, err := m.s.Rcpt("x@example.net", nil); err == nil {
			t.Error("the connection is still open after drop")
		}
	})
	t.Run("rcpt discard removes that recipient", func(t *testing.T) {
		m := start("192.0.2.10")
		m.mail("a@example.org", "QID")
		wantCode(t, m.rcpt("blackhole@example.net"), gomilter.ActContinue, 0)
		wantCode(t, m.rcpt("good@example.net"), gomilter.ActContinue, 0)
		mods, act := m.data([]string{"Subject", " x"}, "")
		wantCode(t, act, gomilter.ActContinue, 0)
		if !slices.Contains(headerMods(mods), "delrcpt <blackhole@example.net>") {
			t.Errorf("modifications %q", headerMods(mods))
		}
	})
	t.Run("rcpt discard of every recipient discards the message", func(t *testing.T) {
		m := start("192.0.2.10")
		m.mail("a@example.org", "QID")
		m.rcpt("blackhole@example.net")
		_, act := m.data([]string{"Subject", " x"}, "")
		wantCode(t, act, gomilter.ActDiscard, 0)
	})
	t.Run("data deny multi-line with percent", func(t *testing.T) {
		m := start("192.0.2.10")
		m.mail("a@example.org", "QID")
		m.rcpt("good@example.net")
		mods, act := m.data([]string{"X-Deny", " yes"}, "")
		wantCode(t, act, gomilter.ActReplyCode, 550)
		if want := "5.7.0 denied: 100%% sure\r\n550 5.7.0 second line"; act.SMTPText != want {
			t.Errorf("text %q, want %q", act.SMTPText, want)
		}
		if len(mods) != 0 {
			t.Errorf("modifications on a rejected message: %q", headerMods(mods))
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		m := start("192.0.2.10")
		m.mail("a@example.org", "QID")
		m.rcpt("good@example.net")
		mods, act := m.data([]string{"X-Quarantine", " yes"}, "")
		wantCode(t, act, gomilter.ActContinue, 0)
		if !slices.Contains(headerMods(mods), "quarantine held for review") {
			t.Errorf("modifications %q", headerMods(mods))
		}
	})
}

// An ACL error or a panic anywhere answers tempfail and logs the ACL and
// position; nothing is accepted silently.
func TestInternalErrorsTempfail(t *testing.T) {
	t.Run("condition panics", func(t *testing.T) {
		reg := acl.NewRegistry()
		quarantineControl(reg)
		reg.Condition(acl.CondDef{Name: "explode", Compile: func(cc *acl.CondCompile) (acl.CondFunc, error) {
			return func(context.Context, *acl.Txn) (bool, error) { panic("boom") }, nil
		}})
		h := newHarnessProgram(t, compileProgram(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept explode = yes\n", reg))
		m := h.mta()
		m.connect("c", gomilter.FamilyInet, "192.0.2.10")
		m.helo("c")
		m.mail("a@example.org", "Q")
		act := m.rcpt("b@example.net")
		wantCode(t, act, gomilter.ActReplyCode, 451)
		if act.SMTPText != "4.3.0 Temporary local problem, try again later" {
			t.Errorf("text %q", act.SMTPText)
		}
		recs := h.waitRecords("ACL error: deferring", 1)
		if recs[0]["acl"] != "r" || recs[0]["pos"] != "test.conf:4:10" || !strings.Contains(recs[0]["error"].(string), "boom") {
			t.Errorf("log %v", recs[0])
		}
	})
	t.Run("body hook panics", func(t *testing.T) {
		h := newHarness(t, testConf, func(e *Env) {
			e.BodyHooks = []BodyHook{func(*acl.Txn) BodyWriter { return panicWriter{} }}
		})
		h.wantPanics = 1
		m := h.mta()
		m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
		m.helo("client.example.org")
		m.mail("a@example.org", "QID")
		m.rcpt("good@example.net")
		m.check(nil, m.s.Macros(gomilter.CodeData, "i", "QID"))
		m.check(m.s.HeaderField("Subject", " x"))
		m.check(m.s.HeaderEnd())
		m.check(m.s.BodyChunk([]byte("one")))
		m.check(m.s.BodyChunk([]byte("two"))) // the panicked writer is gone
		mods, act, err := m.s.End()
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, act, gomilter.ActReplyCode, 451)
		if len(mods) != 0 {
			t.Errorf("modifications %q", headerMods(mods))
		}
		recs := h.waitRecords("transaction", 1)
		if recs[0]["verdict"] != "defer" || !strings.Contains(recs[0]["error"].(string), "internal error in body writer") {
			t.Errorf("log %v", recs[0])
		}
	})
}

type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("writer exploded") }
func (panicWriter) End() error                { return nil }
func (panicWriter) Abort()                    {}

// The body streams through the hooks and is not kept.
func TestBodyHook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	h := newHarness(t, testConf, func(e *Env) {
		e.BodyHooks = []BodyHook{func(txn *acl.Txn) BodyWriter {
			return &recordWriter{done: func(body string, ended bool) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, txn.Header("Subject")[0]+"|"+body+"|"+map[bool]string{true: "end", false: "abort"}[ended])
			}}
		}}
	})
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("a@example.org", "QID")
	m.rcpt("good@example.net")
	m.check(nil, m.s.Macros(gomilter.CodeData, "i", "QID"))
	m.check(m.s.HeaderField("Subject", " streamed"))
	m.check(m.s.HeaderEnd())
	m.check(m.s.BodyChunk([]byte("part one\r\n")))
	m.check(m.s.BodyChunk([]byte("part two\r\n")))
	if _, act, err := m.s.End(); err != nil || act.Code != gomilter.ActContinue {
		t.Fatal(act, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{" streamed|part one\r\npart two\r\n|end"}; !slices.Equal(got, want) {
		t.Errorf("body hook saw %q, want %q", got, want)
	}
}

type recordWriter struct {
	b    strings.Builder
	done func(string, bool)
}

func (w *recordWriter) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *recordWriter) End() error                  { w.done(w.b.String(), true); return nil }
func (w *recordWriter) Abort()                      { w.done(w.b.String(), false) }

// Our Authentication-Results header carries every result, folded, at the
// top; forged ones with our authserv-id (or a StripIDs one) are removed,
// however they are written; others stay.
func TestAuthResults(t *testing.T) {
	reg := acl.NewRegistry()
	quarantineControl(reg)
	reg.Condition(acl.CondDef{Name: "fake_checks", Compile: func(cc *acl.CondCompile) (acl.CondFunc, error) {
		return func(ctx context.Context, t *acl.Txn) (bool, error) {
			t.AddAuthResult(acl.AuthResult{Method: "spf", Result: "pass", Props: []acl.AuthProp{{Type: "smtp", Name: "mailfrom", Value: "sender@example.org"}}})
			t.AddAuthResult(acl.AuthResult{Method: "dkim", Result: "fail", Reason: "signature did not verify",
				Props: []acl.AuthProp{{Type: "header", Name: "d", Value: "example.org"}, {Type: "header", Name: "s", Value: "sel 1"}}})
			t.AddAuthResult(acl.AuthResult{Method: "dmarc", Result: "fail", Props: []acl.AuthProp{{Type: "header", Name: "from", Value: "example.org"}}})
			return true, nil
		}, nil
	}})
	prog := compileProgram(t, "acl_smtp_data = d\nbegin acl\nd:\n  accept fake_checks = yes\n", reg)
	h := newHarnessProgram(t, prog, func(e *Env) { e.StripIDs = []string{"old-name.example.net"} })
	m := h.mta()
	m.connect("c", gomilter.FamilyInet, "192.0.2.10")
	m.helo("c")
	m.mail("sender@example.org", "Q")
	m.rcpt("b@example.net")
	mods, act := m.data([]string{
		"Authentication-Results", " mx.example.net; dkim=pass header.d=example.org",
		"Authentication-Results", " other.example; spf=pass",
		"Authentication-Results", " (forged)\r\n \"MX.Example.NET.\" 1; dmarc=pass",
		"Authentication-Results", " old-name.example.net; none",
		"Subject", " x",
	}, "")
	wantCode(t, act, gomilter.ActContinue, 0)
	want := []string{
		"change 4 Authentication-Results:",
		"change 3 Authentication-Results:",
		"change 1 Authentication-Results:",
		"insert 0 Authentication-Results: mx.example.net;\n" +
			"\tspf=pass smtp.mailfrom=sender@example.org;\n" +
			"\tdkim=fail reason=\"signature did not verify\" header.d=example.org\n" +
			"\theader.s=\"sel 1\";\n" +
			"\tdmarc=fail header.from=example.org",
	}
	if got := headerMods(mods); !slices.Equal(got, want) {
		t.Errorf("modifications:\n got %q\nwant %q", got, want)
	}
}

// Shutdown waits for open sessions, then closes them when its context ends.
func TestShutdown(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		h := newHarness(t, testConf)
		m := h.mta()
		m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
		h.waitSessions(1)
		done := make(chan error, 1)
		go func() { done <- h.srv.Shutdown(context.Background()) }()
		// Still serving the open session.
		wantCode(t, m.helo("client.example.org"), gomilter.ActContinue, 0)
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a session open", err)
		case <-time.After(50 * time.Millisecond):
		}
		m.s.Close()
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if n := h.srv.Sessions(); n != 0 {
			t.Errorf("%d sessions after Shutdown", n)
		}
		if _, err := net.Dial("tcp", h.addr); err == nil {
			t.Error("still accepting after Shutdown")
		}
	})
	t.Run("closes after the deadline", func(t *testing.T) {
		h := newHarness(t, testConf)
		m := h.mta()
		m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
		h.waitSessions(1)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the deadline", err)
		}
		h.waitSessions(0)
		if _, err := m.s.Helo("x"); err == nil {
			t.Error("session still answering after a forced shutdown")
		}
	})
}

// Configuration reloads apply to new sessions; open ones keep theirs.
func TestSessionKeepsItsEnv(t *testing.T) {
	h := newHarness(t, "acl_smtp_helo = h\nbegin acl\nh:\n  accept\n")
	old := h.mta()
	old.connect("c", gomilter.FamilyInet, "192.0.2.10")
	h.cur.Store(&Env{Program: compileProgram(t, "acl_smtp_helo = h\nbegin acl\nh:\n  deny\n", nil)})
	wantCode(t, old.helo("c"), gomilter.ActContinue, 0)
	nw := h.mta()
	nw.connect("c", gomilter.FamilyInet, "192.0.2.10")
	wantCode(t, nw.helo("c"), gomilter.ActReplyCode, 550)
}

// The transaction log line.
func TestTransactionLog(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")
	m.rcpt("nobody@example.net")
	m.rcpt("good@example.net")
	m.data([]string{"Subject", " x"}, "")
	rec := h.waitRecords("transaction", 1)[0]
	for k, want := range map[string]any{
		"client": "192.0.2.10", "client_name": "client.example.org", "helo": "client.example.org",
		"sender": "sender@example.org", "verdict": "accept", "queue_id": "QID", "auth": "alice",
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	if got := anyStrings(rec["recipients"]); !slices.Equal(got, []string{"good@example.net"}) {
		t.Errorf("recipients = %v", got)
	}
	logs := anyStrings(rec["acl_logs"])
	if len(logs) != 2 || logs[0] != "rcpt r test.conf:40:11 logwrite: rcpt good" || !strings.HasSuffix(logs[1], "log_message: data seen") {
		t.Errorf("acl_logs = %q", logs)
	}
}

// A transaction whose recipients were all refused is logged with that
// verdict when the MTA aborts it.
func TestTransactionLogAllRefused(t *testing.T) {
	h := newHarness(t, testConf)
	m := h.mta()
	m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example.org")
	m.mail("sender@example.org", "QID")
	wantCode(t, m.rcpt("nobody@example.net"), gomilter.ActReplyCode, 550)
	if err := m.s.Abort(); err != nil {
		t.Fatal(err)
	}
	rec := h.waitRecords("transaction", 1)[0]
	if rec["verdict"] != "deny" || rec["stage"] != "rcpt" || rec["acl"] != "r" {
		t.Errorf("log %v", rec)
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// waitRecords waits for n log records with the message.
func (h *harness) waitRecords(msg string, n int) []map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := h.logs.records(msg)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d %q records, want %d; log:\n%s", len(recs), msg, n, h.logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
