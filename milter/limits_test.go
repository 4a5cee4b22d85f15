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
