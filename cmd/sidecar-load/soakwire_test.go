package main

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// The soak test counts the milter's answers on the wire, under go-milter's
// client: every packet written and read on a connection goes through a
// countedConn, which knows from the negotiated protocol flags which
// commands call for a reply and counts the final replies (accept,
// continue, discard, reject, tempfail, reply code, skip) that come back.
// go-milter reads only the replies it waits for, so an extra one would be
// read as the next command's or stay unread; before the connection closes,
// after QUIT, countedConn reads what the milter still sent until it
// closes its side. A message's answer is the final reply to its end of
// message: exactly one, whatever the milter does before or after.

// wireTally is what the counted connections of one client saw.
type wireTally struct {
	mu          sync.Mutex
	open, peak  int            // connections open now, at most
	conns       int            // connections closed
	eom         int            // end-of-message commands sent
	eomOnce     int            // ... answered exactly once
	eomLost     int            // ... never answered
	eomDouble   int            // ... answered more than once
	lost, extra int            // other commands: replies missing, replies too many
	noEOF       int            // connections the milter did not close after QUIT
	authservIDs map[string]int // authserv-id of our Authentication-Results header
	lastAR      string         // the last Authentication-Results value read
}

func newWireTally() *wireTally { return &wireTally{authservIDs: map[string]int{}} }

// countingDialer wraps the load generator's dialer.
type countingDialer struct {
	inner *dialer
	tally *wireTally
}

func (d *countingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := d.inner.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	d.tally.mu.Lock()
	d.tally.open++
	d.tally.peak = max(d.tally.peak, d.tally.open)
	d.tally.mu.Unlock()
	return &countedConn{Conn: c, tally: d.tally}, nil
}

// countedConn counts one connection's commands and replies.
type countedConn struct {
	net.Conn
	tally   *wireTally
	in, out frameScanner
	proto   gomilter.OptProtocol // from the milter's SMFIC_OPTNEG reply

	expected, finals int  // replies the commands other than EOM call for; final replies to them
	inEOM            bool // the last command calling for a reply was end of message
	eomFinals        int  // final replies since then
	eoms, once       int
	lostEOM, dblEOM  int
	ar               []string
	closed           bool
}

// frameScanner cuts a byte stream into milter packets: a 4-octet length,
// the command or reply code, the payload.
type frameScanner struct{ buf []byte }

func (s *frameScanner) feed(p []byte, each func(code byte, payload []byte)) {
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 5 {
		n := int(binary.BigEndian.Uint32(s.buf))
		if n < 1 || len(s.buf) < 4+n {
			break
		}
		each(s.buf[4], s.buf[5:4+n])
		s.buf = s.buf[4+n:]
	}
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0] // let a large packet's buffer go
	}
}

// finalReply reports whether a reply code ends the milter's answer to a
// command (libmilter's SMFIR_ codes; the others are modifications and
// progress).
func finalReply(code byte) bool {
	return strings.IndexByte("acdrtys4f", code) >= 0
}

// replyFlags are the commands that call for a reply, each with the
// no-reply flag that spares it (0: always answered). Macros, abort and
// quit are never answered.
var replyFlags = map[byte]gomilter.OptProtocol{
	'O': 0, 'E': 0,
	'C': gomilter.OptNoConnReply, 'H': gomilter.OptNoHeloReply,
	'M': gomilter.OptNoMailReply, 'R': gomilter.OptNoRcptReply,
	'T': gomilter.OptNoDataReply, 'U': gomilter.OptNoUnknownReply,
	'L': gomilter.OptNoHeaderReply, 'N': gomilter.OptNoEOHReply, 'B': gomilter.OptNoBodyReply,
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.out.feed(p, func(code byte, _ []byte) {
		flag, ok := replyFlags[code]
		if !ok || c.proto&flag != 0 {
			return
		}
		c.endEOM()
		if code == 'E' {
			c.inEOM, c.eomFinals = true, 0
			c.eoms++
			return
		}
		c.expected++
	})
	return c.Conn.Write(p)
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.scanReplies(p[:n])
	return n, err
}

func (c *countedConn) scanReplies(p []byte) {
	c.in.feed(p, func(code byte, payload []byte) {
		switch {
		case code == 'O':
			if len(payload) >= 12 {
				c.proto = gomilter.OptProtocol(binary.BigEndian.Uint32(payload[8:]))
			}
			c.finals++
		case finalReply(code):
			if c.inEOM {
				c.eomFinals++
			} else {
				c.finals++
			}
		case code == 'h' || code == 'i': // add header; insert header (index first)
			if code == 'i' && len(payload) >= 4 {
				payload = payload[4:]
			}
			name, rest, _ := strings.Cut(string(payload), "\x00")
			if strings.EqualFold(name, "Authentication-Results") {
				c.ar = append(c.ar, strings.TrimSuffix(rest, "\x00"))
			}
		}
	})
}

// endEOM closes the count of the current end of message's answers.
func (c *countedConn) endEOM() {
	if !c.inEOM {
		return
	}
	switch {
	case c.eomFinals == 1:
		c.once++
	case c.eomFinals == 0:
		c.lostEOM++
	default:
		c.dblEOM++
	}
	c.inEOM = false
}

// Close reads what the milter still sends until it closes the connection
// (go-milter's client closes right after QUIT), then counts.
func (c *countedConn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	eof := false
	c.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := c.Conn.Read(buf)
		c.scanReplies(buf[:n])
		if errors.Is(err, io.EOF) {
			eof = true
		}
		if err != nil {
			break
		}
	}
	c.endEOM()
	t := c.tally
	t.mu.Lock()
	t.open--
	t.conns++
	t.eom += c.eoms
	t.eomOnce += c.once
	t.eomLost += c.lostEOM
	t.eomDouble += c.dblEOM
	t.lost += max(0, c.expected-c.finals)
	t.extra += max(0, c.finals-c.expected)
	if !eof {
		t.noEOF++
	}
	for _, v := range c.ar {
		id, _, _ := strings.Cut(strings.TrimSpace(v), ";")
		t.authservIDs[strings.TrimSpace(id)]++
		t.lastAR = v
	}
	t.mu.Unlock()
	return c.Conn.Close()
}
