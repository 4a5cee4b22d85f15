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
		if !s.neg.has(gomilter.OptNoConnReply) {
			return true, nil
		}
		resp, err := s.Connect("", "", 0, nil, nil)
		s.unanswered("connect", resp, err)
	case 'H':
		if !s.neg.has(gomilter.OptNoHeloReply) {
			return true, nil
		}
		name := strings.TrimSuffix(string(p), "\x00") // as go-milter reads it
		resp, err := s.Helo(name, nil)
		s.unanswered("helo", resp, err)
	case 'M':
		s.esmtpArgs = esmtpArgs(p)
		if !s.neg.has(gomilter.OptNoMailReply) {
			return true, nil
		}
		from := strings.Trim(cString(p), "<>")
		resp, err := s.MailFrom(from, nil)
		s.unanswered("mail", resp, err)
	case 'R':
		s.esmtpArgs = esmtpArgs(p)
		if !s.neg.has(gomilter.OptNoRcptReply) {
			return true, nil
		}
		rcpt := strings.Trim(cString(p), "<>")
		resp, err := s.RcptTo(rcpt, nil)
		s.unanswered("rcpt", resp, err)
	case 'A', 'Q':
		return true, nil
	case 'E':
		if len(p) > 0 { // a last body chunk may ride on end of body
			s.drv.Body(p)
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
		s.drv.EndOfHeader()
		s.answer(gomilter.OptNoEOHReply)
	case 'B':
		s.drv.Body(p)
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

// unanswered takes the reply of a stage negotiated as unanswered, whose
// handler ran here rather than in go-milter (which would write a reply the
// MTA does not read). A verdict other than continue (only an internal error can give one: such
// a stage has no ACL that refuses) makes the end of the message tempfail,
// or every message of the connection when no message is open.
func (s *session) unanswered(stage string, resp gomilter.Response, err error) {
	if err == nil && resp != nil && resp.Response().Code == byte(gomilter.ActContinue) {
		return
	}
	if err == nil {
		err = fmt.Errorf("internal error at %s, a stage the MTA does not wait for (reply %q)", stage, resp.Response().Code)
	}
	s.drv.Fail(err)
}

// cString is the NUL-terminated string at the start of p (all of p when it
// has no NUL), as go-milter reads MAIL and RCPT.
func cString(p []byte) string {
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
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
