package milter

import (
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
)

// headerBytesHeld is what the header fields a session holds cost, counted
// as the cap counts them.
func headerBytesHeld(s *session) int {
	n := 0
	for _, h := range s.txn.Headers {
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
	s.conn = &acl.Conn{}
	s.txn = acl.NewTxn(s.conn, nil)
	s.msg = message{open: true}
	value := " " + strings.Repeat("x", 64<<10)
	for round := 0; round < 20; round++ {
		for i := 0; i < 32; i++ { // 2 MiB a round
			s.header("X-Fill", value)
		}
		if got := headerBytesHeld(s); got > maxHeaderBytes {
			t.Fatalf("round %d: %d bytes of header fields held, cap %d", round, got, maxHeaderBytes)
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
