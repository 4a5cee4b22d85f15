package milter

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// The end-to-end suite (e2e_*_test.go) sends mail with swaks and a small Go
// SMTP client through a real Postfix and a real Sendmail, each run as the
// test's own processes on loopback ports with private configuration and
// queues, with our milter in front and an SMTP sink behind. The milter runs
// the real SPF check against a loopback DNS server. The scenarios are the
// same for both MTAs (e2e_swaks_test.go).

// e2eSkip skips the test with a printed reason, or fails it under CI=true.
func e2eSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", reason)
	}
	fmt.Println("skipping:", reason)
	t.Skip(reason)
}

// needSwaks returns the path of swaks or skips.
func needSwaks(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("swaks")
	if err != nil {
		e2eSkip(t, "%s: swaks is not installed (apt-get install swaks; make test installs it as root)", t.Name())
	}
	return p
}

// e2eConf annotates: SPF goes into Authentication-Results, X-Sidecar shows
// what the milter knew at end of message. Only the recipient "nobody" is
// refused.
const e2eConf = `
authres_strip_ids = forged.example
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
  deny    local_parts = nobody
          message = 550 5.1.1 <$local_part@$domain>: no such user here
  accept
d:
  warn    add_header = X-Sidecar: client=$sender_host_address helo=$sender_helo_name from=$sender_address rcpts=<$recipients> tag=<$h_X-Tag:> spf=$spf_result
  accept
`

// e2eDenyConf also refuses a sender whose SPF check fails, at MAIL.
const e2eDenyConf = `
authres_strip_ids = forged.example
acl_smtp_mail = m
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
m:
  deny    spf = fail
          message = 550 5.7.23 SPF check failed for $sender_address_domain
  accept
r:
  deny    local_parts = nobody
          message = 550 5.1.1 <$local_part@$domain>: no such user here
  accept
d:
  warn    add_header = X-Sidecar: client=$sender_host_address helo=$sender_helo_name from=$sender_address rcpts=<$recipients> tag=<$h_X-Tag:> spf=$spf_result
  accept
`

// e2eZone is the sender domains' DNS: spf-pass.example authorises the
// loopback addresses, spf-fail.example authorises only a documentation
// address.
func e2eZone() *dnstest.Zone {
	return dnstest.NewZone().Add(
		`spf-pass.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"`,
		`spf-fail.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
	)
}

// e2eMilter is our milter with the checks registered and SPF against a
// loopback DNS server. annotate and deny are the two configurations;
// use switches the one new sessions take (as a reload does).
type e2eMilter struct {
	*harness
	annotate, deny *Env
}

func startE2EMilter(t *testing.T) *e2eMilter {
	t.Helper()
	dnsSrv := dnstest.NewServer(t, e2eZone())
	res, err := resolver.New(resolver.Options{Servers: []string{dnsSrv.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg := acl.NewRegistry()
	quarantineControl(reg)
	checks.Register(reg)
	h := newHarnessProgram(t, compileProgram(t, e2eConf, reg), func(e *Env) {
		e.Services.DNS = res
		e.StripIDs = []string{"forged.example"}
	})
	deny := *h.env
	deny.Program = compileProgram(t, e2eDenyConf, reg)
	return &e2eMilter{harness: h, annotate: h.env, deny: &deny}
}

func (m *e2eMilter) use(e *Env) { m.cur.Store(e) }

// e2eSink is the MTA's next hop: an smtpSink whose messages are picked by
// a token in them.
type e2eSink struct {
	*smtpSink
	mu      sync.Mutex
	pending []string
}

func startE2ESink(t *testing.T) *e2eSink { return &e2eSink{smtpSink: startSink(t)} }

// wait returns the delivered message containing token, its header block
// unfolded into fields and its body.
func (s *e2eSink) wait(t *testing.T, token string) (fields []string, body string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	find := func() (string, bool) {
		for i, m := range s.pending {
			if strings.Contains(m, token) {
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
				return m, true
			}
		}
		return "", false
	}
	msg, ok := find()
	timeout := time.After(30 * time.Second)
	for !ok {
		select {
		case m := <-s.msgs:
			s.pending = append(s.pending, m)
			msg, ok = find()
		case <-timeout:
			t.Fatalf("no message with %q reached the sink (%d others did)", token, len(s.pending))
		}
	}
	hdr, body, _ := strings.Cut(msg, "\r\n\r\n")
	t.Logf("delivered header:\n%s", hdr)
	return unfoldFields(hdr), body
}

// fieldsNamed returns the fields with the given name (case-insensitive),
// each as "Name: value".
func fieldsNamed(fields []string, name string) []string {
	var out []string
	for _, f := range fields {
		if n, _, ok := strings.Cut(f, ":"); ok && strings.EqualFold(n, name) {
			out = append(out, f)
		}
	}
	return out
}

// ourAR returns our Authentication-Results fields (authserv-id
// mx.example.net) and the index of the first one among fields.
func ourAR(fields []string) (ours []string, first int) {
	first = -1
	for i, f := range fields {
		if strings.HasPrefix(f, "Authentication-Results: mx.example.net;") {
			ours = append(ours, f)
			if first < 0 {
				first = i
			}
		}
	}
	return ours, first
}

// swaksRun runs swaks and returns its transcript and exit code.
func swaksRun(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--timeout", "30"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out.String())
	}
	return out.String(), code
}

// swaksReplies returns the server's replies of a swaks transcript, in
// order, one string per reply line ("250 2.1.0 Ok"); rejected ones
// (swaks prints them with "<**") are prefixed with "!".
func swaksReplies(transcript string) []string {
	var out []string
	for _, line := range strings.Split(transcript, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "<** "):
			out = append(out, "!"+strings.TrimSpace(line[4:]))
		case strings.HasPrefix(line, "<-  "):
			out = append(out, strings.TrimSpace(line[4:]))
		}
	}
	return out
}

// smtpClient is a minimal SMTP client over net/textproto for what swaks
// cannot do: several messages on one connection.
type smtpClient struct {
	t  *testing.T
	tp *textproto.Conn
}

func dialSMTP(t *testing.T, addr string) *smtpClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { c.Close() })
	s := &smtpClient{t: t, tp: textproto.NewConn(c)}
	if code, msg, err := s.tp.ReadResponse(0); err != nil || code != 220 {
		t.Fatalf("greeting %d %q: %v", code, msg, err)
	}
	return s
}

// cmd sends a command and returns the reply code and text.
func (s *smtpClient) cmd(format string, args ...any) (int, string) {
	s.t.Helper()
	if err := s.tp.PrintfLine(format, args...); err != nil {
		s.t.Fatal(err)
	}
	code, msg, err := s.tp.ReadResponse(0)
	if _, ok := err.(*textproto.Error); err != nil && !ok {
		s.t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	return code, msg
}

// must sends a command and fails the test unless the reply has code want.
func (s *smtpClient) must(want int, format string, args ...any) string {
	s.t.Helper()
	code, msg := s.cmd(format, args...)
	if code != want {
		s.t.Fatalf("%s: %d %s, want %d", fmt.Sprintf(format, args...), code, msg, want)
	}
	return msg
}

// send sends one message (header block and body, LF line ends are fine)
// and returns the reply to the end of data.
func (s *smtpClient) send(from string, rcpts []string, msg string) (int, string) {
	s.t.Helper()
	s.must(250, "MAIL FROM:<%s>", from)
	for _, r := range rcpts {
		s.must(250, "RCPT TO:<%s>", r)
	}
	s.must(354, "DATA")
	w := s.tp.DotWriter()
	if _, err := w.Write([]byte(msg)); err != nil {
		s.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		s.t.Fatal(err)
	}
	code, text, err := s.tp.ReadResponse(0)
	if _, ok := err.(*textproto.Error); err != nil && !ok {
		s.t.Fatal(err)
	}
	return code, text
}

// e2eToken is a unique word for a scenario's message.
func e2eToken(t *testing.T, mta, what string) string {
	return fmt.Sprintf("e2e-%s-%s-%d", mta, what, time.Now().UnixNano())
}

func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// stopProcessGroup signals cmd's process, waits up to d for it to exit,
// then kills its process group.
func stopProcessGroup(cmd *exec.Cmd, sig func(pid int), d time.Duration) {
	if cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	sig(cmd.Process.Pid)
	select {
	case <-done:
	case <-time.After(d):
		killGroup(cmd.Process.Pid)
		<-done
	}
}

// openTempDir makes a directory removed at cleanup that an MTA's own
// users may enter (mode 0755; t.TempDir's parent is private to root).
func openTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}
