package milter

import (
	"errors"
	"fmt"

	gomilter "github.com/emersion/go-milter"
)

// errOrder reports a packet the MTA sent out of the protocol's order.
var errOrder = errors.New("milter: packet out of protocol order")

// phase is where a milter connection stands in the protocol (the states
// of libmilter's engine, coarsened): every packet moves it forward or back
// to the start of a transaction, and a packet that no MTA sends in a phase
// is a broken or hostile peer.
type phase uint8

const (
	phaseNew       phase = iota // nothing yet, or after QUIT_NC: OPTNEG, then CONNECT
	phaseConnected              // after CONNECT, HELO, end of message or ABORT
	phaseEnvelope               // after MAIL, RCPT or DATA
	phaseHeader                 // after a header field
	phaseEOH                    // after end of headers
	phaseBody                   // after a body chunk
)

var phaseNames = [...]string{"before connect", "connected", "envelope", "header", "end of headers", "body"}

func (p phase) String() string { return phaseNames[p] }

// protocolOrder follows one connection through the protocol. The zero
// value expects OPTNEG first.
type protocolOrder struct {
	phase      phase
	negotiated bool // OPTNEG seen on this socket
	optneg     bool // OPTNEG seen since the last QUIT_NC
}

// step checks that a packet with the command code may come now and moves
// to the phase after it. It is lenient where MTAs differ (HELO again before
// the content, MAIL again without ABORT as Sendmail does, no RCPT before
// the content when every recipient was refused) and strict where only a
// broken peer goes: anything before OPTNEG, a transaction without
// CONNECT, content without MAIL, header fields after the body. Unknown
// codes pass: the packet layer refuses them with its own message.
func (o *protocolOrder) step(code byte) error {
	p := o.phase
	next := p
	ok := false
	switch code {
	case 'Q': // QUIT: always allowed; the connection ends
		ok = true
	case 'O': // OPTNEG: once, or again after QUIT_NC
		ok = p == phaseNew && !o.optneg
		o.negotiated = o.negotiated || ok
		o.optneg = o.optneg || ok
	case 'D': // macros come before the event they belong to
		ok = o.negotiated
	case 'C':
		ok = o.negotiated && p == phaseNew
		next = phaseConnected
	case 'H':
		ok = p == phaseConnected || p == phaseEnvelope
	case 'M':
		ok = p == phaseConnected || p == phaseEnvelope
		next = phaseEnvelope
	case 'R', 'T':
		ok = p == phaseEnvelope
	case 'U': // an unknown SMTP command
		ok = p == phaseConnected || p == phaseEnvelope
	case 'L':
		ok = p == phaseEnvelope || p == phaseHeader
		next = phaseHeader
	case 'N':
		ok = p == phaseEnvelope || p == phaseHeader
		next = phaseEOH
	case 'B':
		ok = p >= phaseEnvelope
		next = phaseBody
	case 'E':
		ok = p >= phaseEnvelope
		next = phaseConnected
	case 'A': // ABORT: ends what transaction there is
		ok = p >= phaseConnected
		next = phaseConnected
	case 'K': // QUIT_NC: another connection follows on the socket
		ok = p >= phaseConnected
		next = phaseNew
		o.optneg = o.optneg && !ok
	default:
		return nil
	}
	if !ok {
		if !o.negotiated {
			return fmt.Errorf("%w: command %q before option negotiation", errOrder, code)
		}
		return fmt.Errorf("%w: command %q in phase %s", errOrder, code, p)
	}
	o.phase = next
	return nil
}

// refuseOutOfOrder answers a packet out of order with tempfail, so that
// the MTA neither accepts nor bounces what the broken session carried, and
// ends the connection: nothing after such a packet can be trusted to mean
// what it says.
func (c *frameConn) refuseOutOfOrder(err error) {
	c.sess.logger.Warn("milter: packet out of protocol order; answering tempfail and closing the connection",
		"error", err.Error(), "client", c.sess.clientString())
	if c.sess.drv.Msg.Open {
		c.sess.drv.Fail(err)
	}
	c.writePacket(byte(gomilter.ActTempFail), nil)
	if err := c.flush(); err != nil {
		c.sess.connError("write", err)
	}
}
