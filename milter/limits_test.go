package milter

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/stage"
)

// headerBytesHeld is what the header fields a session holds cost, counted
// as the cap counts them.
func headerBytesHeld(s *session) int {
	n := 0
	for _, h := range s.drv.Txn.Headers {
		n += len(h.Name) + 1 + len(h.Value) + 2
	}
	return n
}

// TestHeaderCapHoldsAcrossAbort guards issue 13 item 3: header fields,
// then ABORT, repeated without MAIL, grew the header list without limit
// (ABORT reset the byte count, not the list: 205 MB on one connection).
// The 4 MiB cap holds per message whatever the packet order.
func TestHeaderCapHoldsAcrossAbort(t *testing.T) {
	s := &session{env: &Env{}, logger: discardLogger, srv: NewServer(func() *Env { return nil })}
	s.drv = stage.New(nil)
	s.drv.Msg.Open = true
	value := " " + strings.Repeat("x", 64<<10)
	for round := 0; round < 20; round++ {
		for i := 0; i < 32; i++ { // 2 MiB a round
			s.header("X-Fill", value)
		}
		if got := headerBytesHeld(s); got > stage.MaxHeaderBytes {
			t.Fatalf("round %d: %d bytes of header fields held, cap %d", round, got, stage.MaxHeaderBytes)
		}
		if err := s.Abort(nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutOfOrderPacketsTempfailAndClose guards issue 13 item 4: end of
// message with no negotiation, a body before anything and MAIL without
// connect were taken for a local submission and accepted. A peer that
// breaks the protocol order gets tempfail and the connection closed.
func TestOutOfOrderPacketsTempfailAndClose(t *testing.T) {
	negotiate := packet('O', u32(6, postfixActions, postfixProtocol))
	connect := connectPacket("client", '4', 4000, "192.0.2.10")
	mail := packet('M', cstr("<a@example.org>"))
	rcpt := packet('R', cstr("<b@example.net>"))
	header := packet('L', cstr("Subject", " hi"))
	tests := []struct {
		name    string
		replies []byte // replies before the tempfail
		pkts    [][]byte
	}{
		{"end of message with no negotiation", nil, [][]byte{packet('E')}},
		{"body before anything", nil, [][]byte{packet('B', []byte("body\r\n"))}},
		{"macros before negotiation", nil, [][]byte{packet('D', []byte{'C'}, cstr("j", "mx"))}},
		{"MAIL without connect", []byte{'O'}, [][]byte{negotiate, mail}},
		{"end of message without connect", []byte{'O'}, [][]byte{negotiate, packet('E')}},
		{"RCPT without MAIL", []byte{'O', 'c'}, [][]byte{negotiate, connect, rcpt}},
		{"header without MAIL", []byte{'O', 'c'}, [][]byte{negotiate, connect, header}},
		{"header after ABORT without MAIL", []byte{'O', 'c', 'c'}, [][]byte{negotiate, connect, mail, header, packet('A'), header}},
		{"header after the body", []byte{'O', 'c', 'c'}, [][]byte{negotiate, connect, mail, rcpt, header, packet('N'), packet('B', []byte("x")), header}},
		{"second connect", []byte{'O', 'c'}, [][]byte{negotiate, connect, connect}},
		{"second negotiation", []byte{'O'}, [][]byte{negotiate, negotiate}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, acceptConf)
			r := h.raw()
			r.send(tc.pkts...)
			for _, code := range tc.replies {
				r.expect(code)
			}
			r.expect('t')
			r.expectClosed()
			h.waitSessions(0)
			if !strings.Contains(h.logs.String(), "out of protocol order") {
				t.Errorf("log does not say why:\n%s", h.logs.String())
			}
		})
	}
}

// TestProtocolOrderLenientWhereMTAsDiffer: what real MTAs send passes the
// order check.
func TestProtocolOrderLenientWhereMTAsDiffer(t *testing.T) {
	for name, seq := range map[string]string{
		"Postfix":                              "ODCDHDMDRDRLLNBBEAQ",
		"Sendmail, no ABORT between mails":     "OCHMRLNBEMRLNBEQ",
		"every recipient refused":              "OCHMRRAMRLNEQ",
		"HELO again after STARTTLS":            "OCHHMRLNBEQ",
		"QUIT_NC, then a new connection":       "OCHMRLNBEKCHMRLNBEQ",
		"QUIT_NC, renegotiated":                "OCKOCQ",
		"unknown command and DATA":             "OCHUMRTLNBEQ",
		"no header fields":                     "OCMRNBE",
		"quit at once":                         "Q",
		"unknown codes are the packet layer's": "Z",
	} {
		var o protocolOrder
		for i := 0; i < len(seq); i++ {
			if err := o.step(seq[i]); err != nil {
				t.Errorf("%s: %q at %d: %v", name, seq[i], i, err)
				break
			}
		}
	}
}

// withLimits sets the harness's connection limits.
func withLimits(lim Limits) func(*Env) { return func(e *Env) { e.Limits = lim } }

// dialFrom opens a raw MTA connection from a given loopback address.
func (h *harness) dialFrom(local string) *rawMTA {
	h.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &rawMTA{t: h.t, c: c, br: bufio.NewReader(c)}
}

// TestMilterAllowRefusesOtherClients guards issue 13 item 5: the milter
// had no allow-list. A TCP client outside milter_allow is closed at once.
func TestMilterAllowRefusesOtherClients(t *testing.T) {
	h := newHarness(t, acceptConf, withLimits(Limits{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}))
	r := h.dialFrom("127.0.0.1")
	r.send(packet('O', u32(6, postfixActions, postfixProtocol)))
	r.expectClosed()
	ok := h.dialFrom("127.0.0.2")
	ok.negotiateV6(postfixActions, postfixProtocol)
	if !strings.Contains(h.logs.String(), "client not in milter_allow") {
		t.Errorf("log does not say why:\n%s", h.logs.String())
	}
}

// TestMilterMaxConnections guards issue 13 item 5: 21,000 idle connections
// exhausted the descriptors. Past milter_max_connections, and past the
// per-client cap for one address, a connection is closed at once; a slot
// freed is usable again.
func TestMilterMaxConnections(t *testing.T) {
	h := newHarness(t, acceptConf, withLimits(Limits{MaxConns: 3, MaxPerClient: 2}))
	open := func(local string) *rawMTA {
		r := h.dialFrom(local)
		r.negotiateV6(postfixActions, postfixProtocol)
		return r
	}
	refused := func(local string) {
		t.Helper()
		r := h.dialFrom(local)
		r.send(packet('O', u32(6, postfixActions, postfixProtocol)))
		r.expectClosed()
	}
	a1 := open("127.0.0.1")
	open("127.0.0.1")
	refused("127.0.0.1") // per-client cap
	open("127.0.0.2")
	refused("127.0.0.3") // the cap of all connections
	a1.c.Close()
	h.waitSessions(2)
	open("127.0.0.3")
	for _, why := range []string{"milter_max_connections_per_client reached", "milter_max_connections reached"} {
		if !strings.Contains(h.logs.String(), why) {
			t.Errorf("log does not say %q:\n%s", why, h.logs.String())
		}
	}
}

// TestMilterFrameTimeout guards issue 13 item 5: the one-hour idle timeout
// also applied in the middle of a packet, so a peer could hold a
// connection with a packet it never finished. Once a packet started, the
// rest must come within milter_frame_timeout; between packets the idle
// timeout (milter_idle_timeout) applies.
func TestMilterFrameTimeout(t *testing.T) {
	h := newHarness(t, acceptConf, withLimits(Limits{IdleTimeout: time.Hour, FrameTimeout: 200 * time.Millisecond}))
	r := h.raw()
	r.negotiateV6(postfixActions, postfixProtocol)
	start := time.Now()
	r.send([]byte{0, 0, 0, 100, 'L', 'X'}) // 2 of 104 bytes
	r.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v", d)
	}

	idle := newHarness(t, acceptConf, withLimits(Limits{IdleTimeout: 300 * time.Millisecond, FrameTimeout: time.Hour}))
	r = idle.raw()
	r.negotiateV6(postfixActions, postfixProtocol)
	start = time.Now()
	r.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle connection closed after %v", d)
	}
}
