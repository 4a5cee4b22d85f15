package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/acl"
)

// MaxFrame is the largest milter packet accepted (command byte and payload,
// without the 4-byte length). MTAs send body chunks of at most 64 KiB and
// headers of at most a few hundred KiB; go-milter itself refuses more than
// 1 MiB.
const MaxFrame = 1 << 20

// writeSoftLimit is the size at which queued replies are written out even
// before the stage ends (a long list of header edits).
const writeSoftLimit = 64 << 10

// keepBuffer is the largest frame buffer a connection keeps between frames;
// a larger one (a huge header) is dropped after use.
const keepBuffer = 128 << 10

// errFrame reports a frame that the guard refuses.
var errFrame = errors.New("milter: bad frame")

// frameConn is the connection as go-milter sees it. It reads each packet
// from the MTA itself, checks its length, lets the session handle the
// packets that go-milter gets wrong, and hands the others to go-milter
// unchanged. Replies written by go-milter (and by the session) are queued
// and written in one piece when go-milter asks for the next packet, so one
// stage costs one write.
type frameConn struct {
	net.Conn // the MTA's connection; Read, Write and Close are ours

	sess  *session
	br    *bufio.Reader
	frame []byte // the current packet with its length prefix
	out   []byte // the part of frame go-milter has not read yet
	wbuf  []byte
	werr  error
	ended bool // the session is over: Read returns io.EOF

	idle, writeTimeout time.Duration
	frameTimeout       time.Duration // the rest of a packet once it started; 0: none
	readDeadline       time.Time
	order              protocolOrder
	quickAck           func() // sends a pending TCP ACK now (Linux); may be nil

	// The stage packet being answered (connect, HELO, MAIL, RCPT, end of
	// message) and when it was read, for the stage latency metric: from
	// the packet to the reply written (or, for a stage the MTA does not
	// wait for, to the end of its handling).
	stageAt   time.Time
	stage     acl.Stage
	stageOpen bool

	counted bool       // admitted by Server.admit: Close uncounts it
	client  netip.Addr // the TCP client's address, for the per-client count

	closeOnce sync.Once
}

// Buffers kept across connections: with one milter connection per SMTP
// session, allocating them per connection was a third of the bytes a
// message cost the garbage collector.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	framePool  = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

func newFrameConn(c net.Conn, s *session, idle, write time.Duration) *frameConn {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c)
	return &frameConn{
		Conn: c, sess: s,
		br:    br,
		frame: *framePool.Get().(*[]byte),
		idle:  idle, writeTimeout: write,
		quickAck: quickAcker(c),
	}
}

// release returns the buffers to their pools once the connection is closed.
func (c *frameConn) release() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if c.frame != nil && cap(c.frame) <= keepBuffer {
		b := c.frame[:0]
		framePool.Put(&b)
	}
	c.frame, c.out = nil, nil
}

// Read gives go-milter the bytes of the next packet it should see.
func (c *frameConn) Read(p []byte) (int, error) {
	if len(c.out) == 0 {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// next reads packets until one is for go-milter. Every error ends the
// session quietly with io.EOF: the session logs the reason, go-milter only
// closes the connection.
func (c *frameConn) next() (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.sess.internalPanic("packet", v)
			err = io.EOF
		}
		if err != nil {
			c.ended = true
		}
	}()
	for {
		if err := c.flush(); err != nil {
			c.sess.connError("write", err)
			return io.EOF
		}
		if c.stageOpen {
			c.stageOpen = false
			if obs := c.sess.env.Observer; obs != nil {
				obs.StageDone(c.stage, time.Since(c.stageAt))
			}
		}
		if c.ended || c.sess.closing {
			return io.EOF
		}
		code, payload, err := c.readFrame()
		if err != nil {
			c.sess.connError("read", err)
			return io.EOF
		}
		if err := c.order.step(code); err != nil {
			c.refuseOutOfOrder(err)
			return io.EOF
		}
		if st, ok := stageOfPacket(code); ok {
			c.stage, c.stageAt, c.stageOpen = st, time.Now(), true
		}
		pass, err := c.sess.packet(code, payload)
		if err != nil {
			c.sess.connError("protocol", err)
			return io.EOF
		}
		if pass {
			c.out = c.frame[:4+len(payload)+1]
			return nil
		}
		if len(c.wbuf) == 0 && c.quickAck != nil && c.br.Buffered() == 0 {
			// Nothing to answer and nothing more buffered: acknowledge now,
			// or the MTA's next small packet may wait on Nagle for our
			// delayed ACK (the "40 ms stall").
			c.quickAck()
		}
	}
}

// readFrame reads one packet into c.frame.
func (c *frameConn) readFrame() (code byte, payload []byte, err error) {
	if c.br == nil {
		return 0, nil, net.ErrClosed
	}
	if cap(c.frame) > keepBuffer {
		c.frame = nil
	}
	if c.idle > 0 {
		// Moving the deadline is a timer update: do it when it would move
		// by more than an eighth of the idle time (at most a second), so
		// an idle MTA is cut off within that much before idle after its
		// last packet.
		slack := min(c.idle/8, time.Second)
		if now := time.Now(); c.readDeadline.Sub(now) < c.idle-slack {
			c.readDeadline = now.Add(c.idle)
			c.Conn.SetReadDeadline(c.readDeadline)
		}
	}
	if c.frameTimeout > 0 {
		// The idle deadline bounds the wait for a packet; once its first
		// byte is here, the rest must follow within frameTimeout, so that
		// a peer cannot hold the connection with a packet it never ends.
		if _, err := c.br.Peek(1); err != nil {
			return 0, nil, err
		}
		if !frameBuffered(c.br) {
			c.readDeadline = time.Now().Add(c.frameTimeout)
			c.Conn.SetReadDeadline(c.readDeadline)
		}
	}
	c.frame, code, payload, err = readFrame(c.br, c.frame)
	return code, payload, err
}

// frameBuffered reports whether a whole packet is in the buffer.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < 4 {
		return false // Peek(4) would wait for the rest
	}
	hdr, _ := br.Peek(4)
	return br.Buffered() >= 4+int(binary.BigEndian.Uint32(hdr))
}

// admitted records that Server.admit counted the connection, and applies
// the limits in force for its reads.
func (c *frameConn) admitted(client netip.Addr, lim Limits) {
	c.counted, c.client = true, client
	c.idle, c.frameTimeout = lim.IdleTimeout, lim.FrameTimeout
}

// readFrame reads one length-prefixed packet from r into buf (grown as
// needed) and returns the buffer holding the prefix and packet, the command
// byte and the payload. A length of zero or above MaxFrame is an error
// before anything is allocated.
func readFrame(r io.Reader, buf []byte) (frame []byte, code byte, payload []byte, err error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 512)
	}
	buf = buf[:4]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, 0, nil, err
	}
	n := binary.BigEndian.Uint32(buf)
	if n == 0 {
		return buf, 0, nil, fmt.Errorf("%w: zero length", errFrame)
	}
	if n > MaxFrame {
		return buf, 0, nil, fmt.Errorf("%w: length %d exceeds %d bytes", errFrame, n, MaxFrame)
	}
	total := 4 + int(n)
	if cap(buf) < total {
		nb := make([]byte, total, max(total, 2*cap(buf)))
		copy(nb, buf[:4])
		buf = nb
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, 0, nil, err
	}
	return buf, buf[4], buf[5:], nil
}

// Write queues bytes written by go-milter; they go out with the next Read.
func (c *frameConn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	if len(c.wbuf) >= writeSoftLimit {
		if err := c.flush(); err != nil {
			// go-milter would log this; the next Read ends the session.
			c.werr = err
		}
	}
	return len(p), nil
}

// writePacket queues a packet written by the session itself.
func (c *frameConn) writePacket(code byte, data []byte) {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)+1))
	hdr[4] = code
	c.wbuf = append(c.wbuf, hdr[:]...)
	c.wbuf = append(c.wbuf, data...)
}

// flush writes the queued replies in one write.
func (c *frameConn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	if c.writeTimeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	_, err := c.Conn.Write(c.wbuf)
	if cap(c.wbuf) > writeSoftLimit {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	if err != nil {
		c.werr = err
	}
	return err
}

// Close writes what is queued, closes the connection and ends the session.
// go-milter calls it once the session is over; it is safe to call twice.
func (c *frameConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.werr == nil {
			c.flush()
		}
		err = c.Conn.Close()
		c.sess.end()
		c.release()
		if c.counted {
			c.sess.srv.leave(c.client)
		}
	})
	return err
}

// stageOfPacket names the stage a packet asks a verdict for.
func stageOfPacket(code byte) (acl.Stage, bool) {
	switch code {
	case 'C':
		return acl.Connect, true
	case 'H':
		return acl.Helo, true
	case 'M':
		return acl.Mail, true
	case 'R':
		return acl.Rcpt, true
	case 'E':
		return acl.Data, true
	}
	return 0, false
}
