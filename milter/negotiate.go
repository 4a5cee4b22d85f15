package milter

import (
	"encoding/binary"
	"fmt"

	gomilter "github.com/emersion/go-milter"
)

// protocolVersion is the milter protocol version we answer with (libmilter's
// SMFI_PROT_VERSION); the MTA's own version is used when it is lower.
const protocolVersion = 6

// wantActions are the modifications we may make: add and insert headers,
// change (delete) headers, delete discarded recipients, quarantine, and
// choose the macros sent at each stage.
const wantActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptRemoveRcpt |
	gomilter.OptQuarantine | gomilter.OptSetSymList

// wantProtocol skips the DATA and unknown-command events, asks for no reply
// to header fields, end of headers and body chunks (one round trip per
// message instead of one per header), and asks for header values with their
// leading space, so that they are exact for DKIM c=simple.
const wantProtocol = gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
	gomilter.OptHeaderLeadingSpace

// envelopeNoReply are the no-reply flags of the envelope stages, asked
// for per connection when the stage's ACL cannot refuse.
const envelopeNoReply = gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply

// The macros we ask for at each stage (SMFIF_SETSYMLIST). Postfix and
// Sendmail name some differently ({daemon_addr} vs {if_addr}); asking for a
// macro the MTA does not know is harmless.
var symList = []struct {
	stage  gomilter.Stage
	macros string
}{
	{gomilter.StageConnect, "j _ {daemon_name} {daemon_addr} {daemon_port} {if_name} {if_addr} {client_addr} {client_port} {client_name}"},
	{gomilter.StageHelo, "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"},
	{gomilter.StageMailFrom, "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"},
	{gomilter.StageRcptTo, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}"},
	{gomilter.StageEOM, "i"},
}

// negotiation is what the two sides agreed on for one connection.
type negotiation struct {
	version  uint32
	actions  gomilter.OptAction
	protocol gomilter.OptProtocol
}

// defaultNegotiation applies until the MTA negotiates.
var defaultNegotiation = negotiation{version: protocolVersion, actions: wantActions, protocol: wantProtocol}

// negotiate answers the MTA's SMFIC_OPTNEG: the MTA offers its version, the
// actions it allows and the protocol steps it can skip or leave unanswered.
//
// A version-6 MTA (Postfix, Sendmail 8.14+) offers its abilities in full,
// and we ask only for what it offers. A peer offering nothing beyond the
// version-2 bits (go-milter's client) honours whatever the milter asks; we
// ask for the whole set, as go-milter always does. An MTA older than version
// 6 gets only what it offered. Whatever is left out is handled: DATA and
// unknown commands are answered, header and body packets are answered when
// no-reply is not granted, and header values get their leading space back.
//
// noReply adds no-reply flags for envelope stages (SMFIP_NR_CONN, _HELO,
// _MAIL, _RCPT) whose verdict cannot be anything but continue: the MTA
// then sends the next packet without waiting for us, a round trip less.
func negotiate(payload []byte, noReply gomilter.OptProtocol) (negotiation, []byte, error) {
	if len(payload) < 12 {
		return negotiation{}, nil, fmt.Errorf("option negotiation of %d bytes, want 12", len(payload))
	}
	version := binary.BigEndian.Uint32(payload)
	mtaActions := gomilter.OptAction(binary.BigEndian.Uint32(payload[4:]))
	mtaProtocol := gomilter.OptProtocol(binary.BigEndian.Uint32(payload[8:]))
	if version < 2 {
		return negotiation{}, nil, fmt.Errorf("milter protocol version %d is not supported", version)
	}
	n := negotiation{version: min(version, protocolVersion), actions: wantActions, protocol: wantProtocol | noReply&envelopeNoReply}
	if version < 6 || mtaActions&^0x3f != 0 {
		n.actions &= mtaActions
	}
	if version < 6 || mtaProtocol&^0x7f != 0 {
		n.protocol &= mtaProtocol
	}
	reply := make([]byte, 12, 256)
	binary.BigEndian.PutUint32(reply, n.version)
	binary.BigEndian.PutUint32(reply[4:], uint32(n.actions))
	binary.BigEndian.PutUint32(reply[8:], uint32(n.protocol))
	if n.actions&gomilter.OptSetSymList != 0 {
		for _, sl := range symList {
			reply = binary.BigEndian.AppendUint32(reply, uint32(sl.stage))
			reply = append(reply, sl.macros...)
			reply = append(reply, 0)
		}
	}
	return n, reply, nil
}

// has reports whether a protocol flag was agreed on.
func (n negotiation) has(flag gomilter.OptProtocol) bool { return n.protocol&flag != 0 }
