package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// testConf is the configuration most tests run: every stage has an ACL,
// and the DATA ACL writes what the milter knew into X-Seen.
const testConf = `
acl_smtp_connect = c
acl_smtp_helo = h
acl_smtp_mail = m
acl_smtp_rcpt = r
acl_smtp_data = d

begin acl

c:
  deny    condition = ${if eq{$sender_host_address}{192.0.2.66}}
          message = 554 5.7.1 go away
  accept

h:
  defer   condition = ${if eq{$sender_helo_name}{slow.example}}
  accept

m:
  discard condition = ${if eq{$sender_address}{spam@example.org}}
  deny    condition = ${if eq{$sender_address}{bad@example.org}}
  drop    condition = ${if eq{$sender_address}{drop@example.org}}
  warn    add_header = X-From-Mail: yes
  accept

r:
  deny    local_parts = nobody
          message = 550 5.1.1 <$local_part@$domain>: no such user
  defer   local_parts = later
  discard local_parts = blackhole
  drop    local_parts = dropme
          message = 421 4.7.0 too many errors
  defer   !condition = ${if eq{$sender_helo_name}{client.example.org}}
          message = lost HELO
  defer   !condition = ${if eq{$sender_host_address}{192.0.2.10}}
          message = lost client address
  defer   condition = ${if eq{$sender_address}{}}
          message = lost sender
  warn    add_header = X-Rcpt: $local_part
          logwrite = rcpt $local_part
  accept

d:
  deny    condition = ${if def:h_X-Deny:}
          message = 550 5.7.0 denied: 100% sure\nsecond line
  deny    condition = ${if def:h_X-First:}
          condition = ${if def:h_X-Second:}
          message = header leaked from the previous message
  warn    condition = ${if def:h_X-Quarantine:}
          control = quarantine/held for review
  warn    remove_header = X-Remove-Me
  warn    add_header = :at_start:X-Top: 1
  warn    add_header = :at_start:X-Top: 2
  warn    add_header = X-Seen: ip=$sender_host_address port=$sender_host_port name=$sender_host_name local=$received_ip_address:$received_port helo=$sender_helo_name from=$sender_address qid=$queue_id tls=$tls_in_ver/$tls_in_cipher/$tls_in_bits auth=$authenticated_id rcpts=$recipients size=$message_size
  warn    log_message = data seen
  accept
`

// quarantineControl: the quarantine control is part of the core registry.
func quarantineControl(*acl.Registry) {}

func compileProgram(t testing.TB, text string, reg *acl.Registry) *acl.Program {
	t.Helper()
	if reg == nil {
		reg = acl.NewRegistry()
		quarantineControl(reg)
	}
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("load:\n%s", config.AsList(err).Format())
	}
	p, err := acl.Compile(cfg, reg)
	if err != nil {
		t.Fatalf("compile:\n%s", config.AsList(err).Format())
	}
	return p
}

// syncBuffer collects log output from several goroutines (see
// testmta.SyncBuffer) and finds the JSON log records in it.
type syncBuffer struct {
	testmta.SyncBuffer
}

// records returns the JSON log records with the given message.
func (b *syncBuffer) records(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type harness struct {
	t          testing.TB
	srv        *Server
	env        *Env
	cur        atomic.Pointer[Env] // what the server takes for a new session
	addr       string
	logs       *syncBuffer
	wantPanics int64
}

func newHarness(t testing.TB, conf string, opts ...func(*Env)) *harness {
	t.Helper()
	return newHarnessProgram(t, compileProgram(t, conf, nil), opts...)
}

func newHarnessProgram(t testing.TB, prog *acl.Program, opts ...func(*Env)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	env := &Env{
		Program:    prog,
		Services:   &acl.Services{PrimaryHostname: "mx.example.net", AuthservID: "mx.example.net"},
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AuthservID: "mx.example.net",
	}
	for _, o := range opts {
		o(env)
	}
	h := &harness{t: t, env: env, logs: logs}
	h.cur.Store(env)
	h.srv = NewServer(h.cur.Load)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if n := h.srv.panics.Load(); n != h.wantPanics {
			t.Errorf("%d internal panics, want %d; log:\n%s", n, h.wantPanics, logs.String())
		}
	})
	return h
}

// client opens a go-milter client session, as a test MTA.
func (h *harness) client() *gomilter.ClientSession {
	h.t.Helper()
	c := gomilter.NewClientWithOptions("tcp", h.addr, gomilter.ClientOptions{
		Dialer:       &net.Dialer{Timeout: 5 * time.Second},
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		ActionMask:   0x3f,
		ProtocolMask: 0,
	})
	s, err := c.Session()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitSessions waits until n sessions are open.
func (h *harness) waitSessions(n int) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.Sessions() != n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d sessions open, want %d", h.srv.Sessions(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mta drives a go-milter client like Postfix does, failing the test on
// protocol errors.
type mta struct {
	t testing.TB
	s *gomilter.ClientSession
}

func (h *harness) mta() *mta {
	m := &mta{t: h.t, s: h.client()}
	h.t.Cleanup(func() { m.s.Close() })
	return m
}

func (m *mta) check(act *gomilter.Action, err error) *gomilter.Action {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
	return act
}

// connect sends Postfix's connect macros and the connect event.
func (m *mta) connect(host string, family gomilter.ProtoFamily, addr string) *gomilter.Action {
	m.t.Helper()
	m.check(nil, m.s.Macros(gomilter.CodeConn, "j", "mx.example.net", "{daemon_name}", "smtpd",
		"{daemon_addr}", "192.0.2.25", "{daemon_port}", "25", "v", "Postfix 3.7"))
	return m.check(m.s.Conn(host, family, 40000, addr))
}

func (m *mta) helo(name string) *gomilter.Action {
	m.t.Helper()
	m.check(nil, m.s.Macros(gomilter.CodeHelo, "{tls_version}", "TLSv1.3", "{cipher}", "TLS_AES_256_GCM_SHA384", "{cipher_bits}", "256"))
	return m.check(m.s.Helo(name))
}

func (m *mta) mail(from, qid string) *gomilter.Action {
	m.t.Helper()
	m.check(nil, m.s.Macros(gomilter.CodeMail, "i", qid, "{auth_authen}", "alice", "{mail_addr}", from))
	return m.check(m.s.Mail(from, nil))
}

func (m *mta) rcpt(to string) *gomilter.Action {
	m.t.Helper()
	m.check(nil, m.s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", to))
	return m.check(m.s.Rcpt(to, nil))
}

// data sends header fields (name, raw value pairs, the value with its
// leading space) and a body, and returns the modifications and the reply.
func (m *mta) data(headers []string, body string) ([]gomilter.ModifyAction, *gomilter.Action) {
	m.t.Helper()
	m.check(nil, m.s.Macros(gomilter.CodeData, "i", "QID"))
	for i := 0; i+1 < len(headers); i += 2 {
		m.check(m.s.HeaderField(headers[i], headers[i+1]))
	}
	m.check(m.s.HeaderEnd())
	if body != "" {
		m.check(m.s.BodyChunk([]byte(body)))
	}
	mods, act, err := m.s.End()
	if err != nil {
		m.t.Fatal(err)
	}
	return mods, act
}

// headerMods renders header modifications as "add Name: value",
// "insert N Name: value", "change N Name: value".
func headerMods(mods []gomilter.ModifyAction) []string {
	var out []string
	for _, m := range mods {
		switch m.Code {
		case gomilter.ActAddHeader:
			out = append(out, "add "+m.HeaderName+":"+m.HeaderValue)
		case gomilter.ActInsertHeader:
			out = append(out, "insert "+strconv.Itoa(int(m.HeaderIndex))+" "+m.HeaderName+":"+m.HeaderValue)
		case gomilter.ActChangeHeader:
			out = append(out, "change "+strconv.Itoa(int(m.HeaderIndex))+" "+m.HeaderName+":"+m.HeaderValue)
		case gomilter.ActDelRcpt:
			out = append(out, "delrcpt "+m.Rcpt)
		case gomilter.ActQuarantine:
			out = append(out, "quarantine "+m.Reason)
		}
	}
	return out
}

func modValue(mods []gomilter.ModifyAction, name string) (string, bool) {
	for _, m := range mods {
		if (m.Code == gomilter.ActAddHeader || m.Code == gomilter.ActInsertHeader) && m.HeaderName == name {
			return m.HeaderValue, true
		}
	}
	return "", false
}

func wantCode(t testing.TB, act *gomilter.Action, code gomilter.ActionCode, smtp int) {
	t.Helper()
	if act.Code != code || (smtp != 0 && act.SMTPCode != smtp) {
		t.Fatalf("reply %q %d %q, want %q %d", act.Code, act.SMTPCode, act.SMTPText, code, smtp)
	}
}

// --- raw packets -----------------------------------------------------------

// packet encodes a milter packet: command and payload parts written as
// they are (use cstr for NUL-terminated strings).
func packet(code byte, parts ...[]byte) []byte {
	var payload []byte
	for _, p := range parts {
		payload = append(payload, p...)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
	out = append(out, code)
	return append(out, payload...)
}

func cstr(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func u32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// connectPacket is SMFIC_CONNECT for an inet peer.
func connectPacket(host string, family byte, port uint16, addr string) []byte {
	return packet('C', cstr(host), []byte{family}, binary.BigEndian.AppendUint16(nil, port), cstr(addr))
}

// rawMTA speaks the milter protocol byte by byte.
type rawMTA struct {
	t     testing.TB
	c     net.Conn
	br    *bufio.Reader
	proto gomilter.OptProtocol // what negotiateV6 agreed on
}

// expectUnless reads a reply with the given code, unless the stage was
// negotiated as unanswered.
func (r *rawMTA) expectUnless(noReply gomilter.OptProtocol, code byte) {
	r.t.Helper()
	if r.proto&noReply == 0 {
		r.expect(code)
	}
}

func (h *harness) raw() *rawMTA {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &rawMTA{t: h.t, c: c, br: bufio.NewReader(c)}
}

func (r *rawMTA) send(pkts ...[]byte) {
	r.t.Helper()
	var all []byte
	for _, p := range pkts {
		all = append(all, p...)
	}
	if _, err := r.c.Write(all); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one packet; io.EOF when the milter closed the connection.
func (r *rawMTA) recv() (byte, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

func (r *rawMTA) expect(code byte) []byte {
	r.t.Helper()
	c, data, err := r.recv()
	if err != nil {
		r.t.Fatalf("want packet %q: %v", code, err)
	}
	if c != code {
		r.t.Fatalf("got packet %q %q, want %q", c, data, code)
	}
	return data
}

// expectClosed waits for the milter to close the connection.
func (r *rawMTA) expectClosed() {
	r.t.Helper()
	c, data, err := r.recv()
	if err == nil {
		r.t.Fatalf("got packet %q %q, want the connection closed", c, data)
	}
	if err != io.EOF && !errorsIsReset(err) {
		r.t.Fatalf("want EOF, got %v", err)
	}
}

func errorsIsReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// negotiateV6 offers what Postfix offers: every action and protocol bit.
func (r *rawMTA) negotiateV6(actions, protocol uint32) (uint32, uint32) {
	r.t.Helper()
	r.send(packet('O', u32(6, actions, protocol)))
	data := r.expect('O')
	if len(data) < 12 {
		r.t.Fatalf("short OPTNEG reply %x", data)
	}
	r.proto = gomilter.OptProtocol(binary.BigEndian.Uint32(data[8:]))
	return binary.BigEndian.Uint32(data[4:]), binary.BigEndian.Uint32(data[8:])
}
