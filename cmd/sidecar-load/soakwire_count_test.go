package main

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// TestCountedConnCountsAnswers drives a countedConn against a scripted
// milter that answers end of message once, twice or never, and checks that
// the soak test's counts see it: the soak's "exactly one answer" can fail.
func TestCountedConnCountsAnswers(t *testing.T) {
	frame := func(code byte, payload []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)))
		return append(append(b, code), payload...)
	}
	optneg := make([]byte, 12)
	binary.BigEndian.PutUint32(optneg, 6)
	binary.BigEndian.PutUint32(optneg[8:], uint32(gomilter.OptNoConnReply|gomilter.OptNoMailReply|gomilter.OptNoRcptReply))
	ar := frame('h', []byte("Authentication-Results\x00 mx.example; spf=pass\x00"))
	type counts struct{ eom, once, double, lost, missing, extra int }
	tests := []struct {
		name    string
		replies [][]byte // what the milter writes after end of message
		helo    int      // final replies to HELO (answered: no NR_HELO)
		want    counts
	}{
		{"one answer", [][]byte{ar, frame('a', nil)}, 1, counts{eom: 1, once: 1}},
		{"two answers", [][]byte{frame('a', nil), frame('t', nil)}, 1, counts{eom: 1, double: 1}},
		{"no answer", nil, 1, counts{eom: 1, lost: 1}},
		{"HELO unanswered", [][]byte{frame('c', nil)}, 0, counts{eom: 1, once: 1, missing: 1}},
		// A stray reply is read when the client next reads, so it counts
		// against the command then waiting: a failure either way.
		{"HELO answered twice", [][]byte{frame('c', nil)}, 2, counts{eom: 1, double: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// TCP on loopback, not net.Pipe: the kernel buffers the
			// replies nobody reads yet, as with the real milter.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			client, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			tally := newWireTally()
			c := &countedConn{Conn: client, tally: tally}
			go func() {
				defer server.Close()
				read := func() byte {
					var h [5]byte
					if _, err := io.ReadFull(server, h[:]); err != nil {
						return 0
					}
					io.CopyN(io.Discard, server, int64(binary.BigEndian.Uint32(h[:]))-1)
					return h[4]
				}
				read() // O
				server.Write(frame('O', optneg))
				read() // C: no reply negotiated
				read() // H
				for range tt.helo {
					server.Write(frame('c', nil))
				}
				read() // M: no reply
				read() // E
				for _, r := range tt.replies {
					server.Write(r)
				}
				read() // Q
			}()
			buf := make([]byte, 64)
			c.Write(frame('O', make([]byte, 12)))
			c.Read(buf)
			c.Write(frame('C', []byte("x\x00U")))
			c.Write(frame('H', []byte("x\x00")))
			if tt.helo > 0 {
				c.Read(buf[:5])
			}
			c.Write(frame('M', []byte("<a@b>\x00")))
			c.Write(frame('E', nil))
			c.Write(frame('Q', nil))
			c.Close()
			got := counts{tally.eom, tally.eomOnce, tally.eomDouble, tally.eomLost, tally.lost, tally.extra}
			if got != tt.want || tally.noEOF != 0 {
				t.Errorf("got %+v (connections not closed after QUIT: %d), want %+v", got, tally.noEOF, tt.want)
			}
		})
	}
}
