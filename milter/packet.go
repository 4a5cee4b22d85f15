package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// packet handles a packet before go-milter sees it and says whether
// go-milter should get it. Negotiation, macros, header fields, end of
// headers, body chunks and the DATA, UNKNOWN and QUIT_NC commands are
// handled here; go-milter gets connect, HELO, MAIL, RCPT, end of message,
// ABORT and QUIT, which it turns into calls of the session's methods.
func (s *session) packet(code byte, p []byte) (pass bool, err error) {
	if code != 'D' && code != 'O' {
		s.macros.command(code)
	}
	switch code {
	case 'O':
		n, reply, err := negotiate(p, s.unansweredStages())
		if err != nil {
			return false, err
		}
		s.neg = n
		s.fc.writePacket('O', reply)
		return false, nil
	case 'D':
		if len(p) == 0 {
			return false, errors.New("empty macro packet")
		}
		if st, ok := macroStageOf(p[0]); ok {
			s.macros.set(st, p[1:])
		}
		return false, nil
	case 'C':
		peer, err := parseConnect(p)
		if err != nil {
			return false, err
		}
		s.peer = peer
		s.fc.dropReply(s.neg.has(gomilter.OptNoConnReply))
		return true, nil
	case 'H':
		s.fc.dropReply(s.neg.has(gomilter.OptNoHeloReply))
		return true, nil
	case 'M':
		s.fc.dropReply(s.neg.has(gomilter.OptNoMailReply))
		return true, nil
	case 'R':
		s.fc.dropReply(s.neg.has(gomilter.OptNoRcptReply))
		return true, nil
	case 'A', 'Q':
		return true, nil
	case 'E':
		if len(p) > 0 { // a last body chunk may ride on end of body
			s.bodyChunk(p)
		}
		return true, nil
	case 'L':
		name, value, err := parseHeader(p)
		if err != nil {
			return false, err
		}
		s.header(name, value)
		s.answer(gomilter.OptNoHeaderReply)
	case 'N':
		s.startBody()
		s.answer(gomilter.OptNoEOHReply)
	case 'B':
		s.bodyChunk(p)
		s.answer(gomilter.OptNoBodyReply)
	case 'T':
		s.answer(gomilter.OptNoDataReply)
	case 'U':
		s.answer(gomilter.OptNoUnknownReply)
	case 'K':
		// QUIT_NC: this connection is over, another follows on the socket.
		s.endConnection("connection closed (QUIT_NC)")
		s.newConnection()
		s.macros = macros{}
	default:
		return false, fmt.Errorf("unknown command %q", code)
	}
	return false, nil
}

// unansweredStages are the envelope stages whose verdict cannot be
// anything but continue with this connection's configuration, as no-reply
// flags. MAIL also answers for a discard decided at connect or HELO, so it
// is left unanswered only when those stages cannot refuse either.
func (s *session) unansweredStages() gomilter.OptProtocol {
	prog := s.env.Program
	if prog == nil {
		return envelopeNoReply
	}
	var f gomilter.OptProtocol
	if !prog.CanRefuse(acl.Connect) {
		f |= gomilter.OptNoConnReply
	}
	if !prog.CanRefuse(acl.Helo) {
		f |= gomilter.OptNoHeloReply
	}
	if !prog.CanRefuse(acl.Mail) && !prog.CanRefuse(acl.Connect) && !prog.CanRefuse(acl.Helo) {
		f |= gomilter.OptNoMailReply
	}
	if !prog.CanRefuse(acl.Rcpt) {
		f |= gomilter.OptNoRcptReply
	}
	return f
}

// unansweredFailed is called when go-milter's reply to an unanswered stage
// was not continue: an internal error (a panic) at that stage. The MTA
// cannot hear it now, so the transaction, or every transaction of the
// connection when no message is open, ends in tempfail.
func (s *session) unansweredFailed(reply []byte) {
	err := fmt.Errorf("internal error at a stage the MTA does not wait for (reply %q)", reply)
	if s.msg.open {
		if s.msg.failure == nil {
			s.msg.failure = err
		}
		return
	}
	if s.connFailure == nil {
		s.connFailure = err
	}
}

// answer continues an event, unless it was negotiated as unanswered.
func (s *session) answer(noReply gomilter.OptProtocol) {
	if !s.neg.has(noReply) {
		s.fc.writePacket(byte(gomilter.ActContinue), nil)
	}
}

// parseConnect reads SMFIC_CONNECT: host name, family, port and address.
func parseConnect(p []byte) (peerInfo, error) {
	host, rest, ok := bytes.Cut(p, []byte{0})
	if !ok || len(rest) == 0 {
		return peerInfo{}, errors.New("malformed connect packet")
	}
	pi := peerInfo{host: string(host), family: rest[0]}
	rest = rest[1:]
	switch pi.family {
	case 'U':
		return pi, nil
	case '4', '6':
		if len(rest) < 2 {
			return peerInfo{}, errors.New("malformed connect packet: no port")
		}
		pi.port = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	case 'L':
	default:
		return peerInfo{}, fmt.Errorf("connect packet with unknown family %q", pi.family)
	}
	addr, _, _ := bytes.Cut(rest, []byte{0})
	pi.addr = string(addr)
	return pi, nil
}

// parseHeader reads SMFIC_HEADER: name NUL value NUL.
func parseHeader(p []byte) (name, value string, err error) {
	n, rest, ok := bytes.Cut(p, []byte{0})
	if !ok {
		return "", "", errors.New("malformed header packet")
	}
	v, _, _ := bytes.Cut(rest, []byte{0})
	return string(n), string(v), nil
}

// parseAddr reads an IP address as the MTAs write it: "192.0.2.1",
// "IPv6:2001:db8::1" (Sendmail), "[192.0.2.1]".
func parseAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// clientName is the host name of SMFIC_CONNECT, unless the MTA says it has
// none: Postfix writes "unknown", Sendmail "[192.0.2.1]".
func clientName(host string) string {
	if host == "" || host == "unknown" || strings.HasPrefix(host, "[") {
		return ""
	}
	return host
}
