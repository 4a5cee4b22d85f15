package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
)

// What Postfix offers: every action and every protocol bit up to
// SMFIP_HDR_LEADSPC.
const (
	postfixActions  = 0x1ff
	postfixProtocol = 0x1fffff
)

const acceptConf = "acl_smtp_connect = c\nbegin acl\nc:\n  deny condition = ${if eq{$sender_host_address}{192.0.2.66}}\n  accept\n"

// envelope sends a connection, HELO, MAIL and RCPT and expects continue
// for each.
func (r *rawMTA) envelope() {
	r.t.Helper()
	r.send(packet('D', []byte{'C'}, cstr("j", "mx", "{daemon_addr}", "192.0.2.25")), connectPacket("client", '4', 4000, "192.0.2.10"))
	r.expectUnless(gomilter.OptNoConnReply, 'c')
	r.send(packet('H', cstr("client")))
	r.expectUnless(gomilter.OptNoHeloReply, 'c')
	r.send(packet('D', []byte{'M'}, cstr("i", "Q1")), packet('M', cstr("<a@example.org>", "SIZE=10")))
	r.expectUnless(gomilter.OptNoMailReply, 'c')
	r.send(packet('R', cstr("<b@example.net>")))
	r.expectUnless(gomilter.OptNoRcptReply, 'c')
}

// Trap 4: events negotiated as no-reply must get no reply; events not so
// negotiated must get one. go-milter answers DATA and malformed headers
// whatever was negotiated.
func TestTrapNoReplyStages(t *testing.T) {
	content := [][]byte{
		packet('D', []byte{'T'}, cstr("i", "Q1")),
		packet('U', cstr("XYZZY")),
		packet('T'),
		packet('L', cstr("Subject", " one")),
		packet('L', cstr("X-Empty", "")),
		packet('N'),
		packet('B', []byte("body\r\n")),
	}
	t.Run("no-reply negotiated", func(t *testing.T) {
		h := newHarness(t, acceptConf)
		r := h.raw()
		_, proto := r.negotiateV6(postfixActions, postfixProtocol)
		// acceptConf has a connect ACL that can refuse and no other: HELO
		// and RCPT go unanswered, MAIL not (it would carry a discard
		// decided at connect).
		want := wantProtocol | gomilter.OptNoHeloReply | gomilter.OptNoRcptReply
		if proto != uint32(want) {
			t.Fatalf("protocol %#x, want %#x", proto, want)
		}
		r.envelope()
		// DATA and UNKNOWN were negotiated away: the MTA does not send them.
		r.send(content[0], content[3], content[4], content[5], content[6])
		r.send(packet('E'))
		// The first packet after end of message is our header insert: no
		// stray continue for the header, EOH or body packets.
		data := r.expect('i')
		if !strings.Contains(string(data), "Authentication-Results") {
			t.Errorf("insert %q", data)
		}
		r.expect('c')
	})
	t.Run("replies when the MTA does not offer no-reply", func(t *testing.T) {
		h := newHarness(t, acceptConf)
		r := h.raw()
		offer := uint32(postfixProtocol &^ (gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
			gomilter.OptNoData | gomilter.OptNoUnknown | gomilter.OptNoDataReply | gomilter.OptNoUnknownReply))
		_, proto := r.negotiateV6(postfixActions, offer)
		if proto&^offer != 0 {
			t.Fatalf("asked for %#x, beyond the offer %#x", proto, offer)
		}
		r.envelope()
		r.send(content...)
		for range len(content) - 1 { // every packet but the macros is answered
			r.expect('c')
		}
		r.send(packet('E'))
		r.expect('i')
		r.expect('c')
	})
}

// Trap 7: a zero-length frame panicked go-milter and frame sizes were
// unbounded. The guard closes the connection first, without a panic.
func TestTrapFrameGuard(t *testing.T) {
	tests := []struct {
		name      string
		negotiate bool
		bytes     []byte
		log       string
		envelope  bool // send connect, HELO, MAIL and RCPT first
	}{
		{"zero length first", false, []byte{0, 0, 0, 0}, "zero length", false},
		{"zero length later", true, []byte{0, 0, 0, 0}, "zero length", false},
		{"4 GiB", true, []byte{0xff, 0xff, 0xff, 0xff, 'L'}, "exceeds", false},
		{"just over the cap", true, binary.BigEndian.AppendUint32(nil, MaxFrame+1), "exceeds", false},
		{"unknown command", true, packet('Z'), "unknown command", false},
		{"malformed connect", true, packet('C', []byte("host")), "malformed connect", false},
		{"connect with bad family", true, packet('C', cstr("host"), []byte{'9'}), "unknown family", false},
		{"header without NUL", true, packet('L', []byte("Subject")), "malformed header", true},
		{"empty macro", true, packet('D'), "empty macro", false},
		{"short negotiation", false, packet('O', u32(6)), "option negotiation", false},
		{"truncated frame", true, []byte{0, 0, 0, 100, 'L', 'x'}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, acceptConf)
			r := h.raw()
			if tc.negotiate {
				r.negotiateV6(postfixActions, postfixProtocol)
			}
			if tc.envelope {
				r.envelope()
			}
			r.send(tc.bytes)
			if tc.name == "truncated frame" {
				r.c.(interface{ CloseWrite() error }).CloseWrite()
			}
			r.expectClosed()
			h.waitSessions(0)
			if tc.log != "" && !strings.Contains(h.logs.String(), tc.log) {
				t.Errorf("log does not say %q:\n%s", tc.log, h.logs.String())
			}
		})
	}
	t.Run("a frame of MaxFrame bytes is accepted", func(t *testing.T) {
		h := newHarness(t, acceptConf)
		r := h.raw()
		r.negotiateV6(postfixActions, postfixProtocol)
		r.envelope()
		big := strings.Repeat("x", MaxFrame-1-len("X-Big\x00\x00"))
		r.send(packet('L', cstr("X-Big", big)), packet('N'), packet('E'))
		r.expect('i')
		r.expect('c')
	})
}

// A peer that offers nothing beyond the version-2 bits (go-milter's client)
// gets the whole set, as go-milter always asks; an old MTA gets only what
// it offered; Postfix gets what we want, with our macro lists.
func TestNegotiate(t *testing.T) {
	tests := []struct {
		name                    string
		version, actions, proto uint32
		wantVersion             uint32
		wantActions             gomilter.OptAction
		wantProto               gomilter.OptProtocol
		symlist                 bool
		noReply                 gomilter.OptProtocol
	}{
		{"postfix", 6, postfixActions, postfixProtocol, 6, wantActions, wantProtocol, true, 0},
		{"go-milter client", 6, 0x3f, 0, 6, wantActions, wantProtocol, true, 0},
		{"version 2 MTA", 2, 0x3f, 0x7f, 2, wantActions & 0x3f, wantProtocol & 0x7f, false, 0},
		{"no header changes", 6, postfixActions &^ uint32(gomilter.OptChangeHeader), postfixProtocol, 6, wantActions &^ gomilter.OptChangeHeader, wantProtocol, true, 0},
		{"postfix, MAIL and RCPT unanswered", 6, postfixActions, postfixProtocol, 6, wantActions,
			wantProtocol | gomilter.OptNoMailReply | gomilter.OptNoRcptReply, true, gomilter.OptNoMailReply | gomilter.OptNoRcptReply},
		{"only envelope flags are added", 6, postfixActions, postfixProtocol, 6, wantActions,
			wantProtocol | gomilter.OptNoHeloReply, true, gomilter.OptNoHeloReply | gomilter.OptNoConnect | gomilter.OptSkip},
		{"not offered: not asked", 6, postfixActions, postfixProtocol &^ uint32(gomilter.OptNoMailReply), 6, wantActions,
			wantProtocol | gomilter.OptNoRcptReply, true, gomilter.OptNoMailReply | gomilter.OptNoRcptReply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, reply, err := negotiate(u32(tc.version, tc.actions, tc.proto), tc.noReply)
			if err != nil {
				t.Fatal(err)
			}
			if n.version != tc.wantVersion || n.actions != tc.wantActions || n.protocol != tc.wantProto {
				t.Errorf("got %d %#x %#x, want %d %#x %#x", n.version, n.actions, n.protocol, tc.wantVersion, tc.wantActions, tc.wantProto)
			}
			if got := binary.BigEndian.Uint32(reply[8:]); got != uint32(n.protocol) {
				t.Errorf("reply protocol %#x", got)
			}
			if hasSym := len(reply) > 12; hasSym != tc.symlist {
				t.Errorf("symlist sent: %v, want %v", hasSym, tc.symlist)
			}
		})
	}
	if _, _, err := negotiate(u32(1, 0, 0), 0); err == nil {
		t.Error("version 1 accepted")
	}
}

// Without SMFIP_HDR_LEADSPC the MTA drops the space after the colon and
// adds one to our values: we restore it on input and leave it out on output.
func TestWithoutLeadingSpace(t *testing.T) {
	h := newHarness(t, "acl_smtp_data = d\nbegin acl\nd:\n  warn add_header = X-Subject: [$rh_Subject:]\n  accept\n",
		func(e *Env) { e.AuthservID = "" })
	r := h.raw()
	r.negotiateV6(postfixActions, postfixProtocol&^uint32(gomilter.OptHeaderLeadingSpace))
	r.envelope()
	r.send(packet('L', cstr("Subject", "folded\n line")), packet('N'), packet('E'))
	data := r.expect('h')
	if string(data) != "X-Subject\x00[ folded\n line]\x00" {
		t.Errorf("add header %q", data)
	}
	r.expect('c')
}

// SMFIC_QUIT_NC ends the connection's state; the next connect starts anew.
func TestQuitNewConnection(t *testing.T) {
	h := newHarness(t, acceptConf)
	r := h.raw()
	r.negotiateV6(postfixActions, postfixProtocol)
	r.envelope()
	r.send(packet('K'))
	r.send(connectPacket("bad", '4', 4000, "192.0.2.66"))
	data := r.expect('y')
	if !strings.HasPrefix(string(data), "550 ") {
		t.Errorf("reply %q", data)
	}
	recs := h.waitRecords("transaction", 1)
	if recs[0]["verdict"] != "connection closed (QUIT_NC)" {
		t.Errorf("first connection's transaction: %v", recs[0])
	}
}

func TestMacrosPerStage(t *testing.T) {
	var m macros
	m.set(mConnect, cstr("j", "mx", "{daemon_addr}", "192.0.2.25"))
	m.command('C')
	m.set(mMail, cstr("i", "Q1", "{auth_authen}", "alice"))
	m.command('M')
	m.set(mRcpt, cstr("{rcpt_addr}", "a@example.net"))
	m.command('R')
	if m.get("daemon_addr") != "192.0.2.25" || m.get("{i}") != "Q1" || m.get("rcpt_addr") != "a@example.net" {
		t.Fatalf("lookups: %q %q %q", m.get("daemon_addr"), m.get("i"), m.get("rcpt_addr"))
	}
	m.command('R') // a recipient without macros: the last one's are stale
	if v, ok := m.lookup("rcpt_addr"); ok {
		t.Errorf("stale rcpt_addr %q", v)
	}
	m.set(mData, cstr("i", "Q1-data"))
	if m.get("i") != "Q1-data" {
		t.Errorf("latest stage first: %q", m.get("i"))
	}
	m.command('L')
	m.command('M') // the next message, without MAIL macros
	if v, ok := m.lookup("i"); ok {
		t.Errorf("queue id %q survived into the next message", v)
	}
	if m.get("j") != "mx" {
		t.Error("connect macros lost")
	}
	m.set(mMail, cstr("i", "Q2"))
	m.command('A')
	if _, ok := m.lookup("i"); ok {
		t.Error("abort keeps the message's macros")
	}
}

// A stage negotiated as unanswered runs without go-milter; a verdict
// other than continue there (only an internal error can give one) turns
// into tempfail at the end of the message, or of every message of the
// connection when none is open.
func TestUnansweredStageReplies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		resp     gomilter.Response
		err      error
		open     bool
		msgFail  bool
		connFail bool
	}{
		{"continue", replyContinue, nil, true, false, false},
		{"tempfail in a transaction", replyTempfail, nil, true, true, false},
		{"error in a transaction", nil, errors.New("boom"), true, true, false},
		{"tempfail before MAIL", replyTempfail, nil, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &session{drv: stage.New(nil)}
			s.drv.Msg.Open = tc.open
			s.unanswered("helo", tc.resp, tc.err)
			msgFail, connFail := s.drv.Failures()
			if (msgFail != nil) != tc.msgFail || (connFail != nil) != tc.connFail {
				t.Errorf("message failure %v, connection failure %v", msgFail, connFail)
			}
		})
	}
}

// TestIdleTimeout: a connection on which the MTA keeps sending stays open
// past the idle timeout (the deadline moves with the packets, if lazily);
// one left silent is closed once the timeout has passed.
func TestIdleTimeout(t *testing.T) {
	env := &Env{Program: compileProgram(t, acceptConf, nil), Services: &acl.Services{PrimaryHostname: "mx.example.net"},
		AuthservID: "mx.example.net", Logger: slog.New(slog.DiscardHandler)}
	srv := NewServer(func() *Env { return env })
	srv.IdleTimeout = time.Second // well above the 100 ms between packets, on a busy machine too
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	dial := func() *rawMTA {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := &rawMTA{t: t, c: c, br: bufio.NewReader(c)}
		r.negotiateV6(postfixActions, postfixProtocol)
		return r
	}
	busy, idle := dial(), dial()
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		busy.send(packet('D', []byte{'C'}, cstr("j", "mx")))
		time.Sleep(100 * time.Millisecond)
	}
	// The connect ACL can refuse: the connect stage is answered.
	busy.send(connectPacket("client", '4', 4000, "192.0.2.10"))
	busy.expect('c')

	idle.c.SetReadDeadline(time.Now().Add(6 * time.Second))
	if _, err := idle.br.ReadByte(); err == nil {
		t.Fatal("the idle connection got data instead of being closed")
	} else if time.Since(start) > 4*time.Second {
		t.Errorf("idle connection closed after %v: %v", time.Since(start), err)
	}
}
