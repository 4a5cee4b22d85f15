package milter

import (
	"fmt"
	"net"
	"net/textproto"
	"strconv"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
)

// Connect starts a connection and runs the connect ACL.
func (s *session) Connect(_ string, _ string, _ uint16, _ net.IP, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("connect", &resp)
	if s.txnOpen || len(s.drv.Unlogged()) > 0 || s.drv.ConnVerdict != nil {
		s.endConnection("connection closed")
	}
	var c stage.Client
	if s.peer.family == '4' || s.peer.family == '6' {
		c.IP = parseAddr(s.peer.addr)
		c.Port = int(s.peer.port)
	}
	if !c.IP.IsValid() && s.peer.family != 'L' {
		if a := parseAddr(s.macros.get("client_addr")); a.IsValid() {
			c.IP = a
			c.Port, _ = strconv.Atoi(s.macros.get("client_port"))
		}
	}
	c.Name = clientName(s.peer.host)
	for _, m := range []string{"daemon_addr", "if_addr"} {
		if a := parseAddr(s.macros.get(m)); a.IsValid() {
			c.LocalIP = a
			break
		}
	}
	c.LocalPort, _ = strconv.Atoi(s.macros.get("daemon_port"))
	return s.reply(acl.Connect, s.drv.Connect(s.ctx, c)), nil
}

// Helo runs the HELO ACL.
func (s *session) Helo(name string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("helo", &resp)
	s.updateTLS()
	return s.reply(acl.Helo, s.drv.Helo(s.ctx, name)), nil
}

// MailFrom starts a transaction and runs the MAIL ACL. The previous
// transaction ends here if the MTA sent no ABORT (Sendmail).
func (s *session) MailFrom(from string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("mail", &resp)
	if s.txnOpen {
		s.drv.EndOpen()
		s.logTxn("aborted")
	}
	if v, ok := s.macros.lookup("auth_authen"); ok {
		s.drv.Conn.AuthID = v
	}
	s.updateTLS()
	s.txnOpen, s.edits, s.quarantine = true, nil, ""
	return s.reply(acl.Mail, s.drv.Mail(s.ctx, from, s.macros.get("i"), s.esmtpArgs...)), nil
}

// RcptTo runs the RCPT ACL for one recipient. A rejection answers for this
// recipient only; the transaction goes on.
func (s *session) RcptTo(rcpt string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("rcpt", &resp)
	s.drv.SetQueueID(s.macros.get("i"))
	return s.reply(acl.Rcpt, s.drv.Rcpt(s.ctx, rcpt, s.esmtpArgs...)), nil
}

// Header is never called: header packets are handled before go-milter.
func (s *session) Header(string, string, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}

// Headers is never called: end of headers is handled before go-milter.
func (s *session) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}

// BodyChunk is never called: body packets are handled before go-milter.
func (s *session) BodyChunk([]byte, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}

// Body is the end of the message: the body writers finish, the DATA ACL
// runs, and on accept the header edits go out before the reply.
func (s *session) Body(m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("end of message", &resp)
	end := s.drv.EndOfMessage(s.ctx, s.macros.get("i"))
	s.logACLError(acl.Data, end.Result)
	r, closeAfter := verdictReply(end.Result)
	verdict := ""
	switch {
	case end.Discard:
		r, verdict = replyDiscard, "discard"
	case end.Edits != nil:
		s.applyEdits(m, end.Edits)
	}
	s.logTxn(verdict)
	if verdict == "" {
		verdict = string(end.Result.Verb)
	}
	s.logBounces(verdict)
	s.closing = s.closing || closeAfter
	return r, nil
}

// Abort ends the transaction without a message.
func (s *session) Abort(*gomilter.Modifier) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.internalPanic("abort", v)
		}
	}()
	if s.txnOpen {
		s.drv.EndOpen()
		s.logTxn("aborted")
	}
	s.drv.Abort()
	return nil
}

// recoverReply turns a panic in a callback into tempfail.
func (s *session) recoverReply(where string, resp *gomilter.Response) {
	if v := recover(); v != nil {
		s.internalPanic(where, v)
		*resp = replyTempfail
		if s.drv.Msg.Open && s.drv.Msg.Verdict == nil {
			s.drv.Msg.Verdict = &stage.Decision{Result: acl.Result{Verb: acl.Defer, Err: fmt.Errorf("internal error in %s: %v", where, v)}}
		}
	}
}

// reply turns the verdict of an envelope stage into the reply to the MTA.
// A discard at connect or HELO continues (the driver discards the
// connection's messages instead), and so does one at RCPT (the driver
// removes that recipient at the end of the message).
func (s *session) reply(st acl.Stage, res acl.Result) gomilter.Response {
	s.logACLError(st, res)
	r, closeAfter := verdictReply(res)
	s.closing = s.closing || closeAfter
	if st != acl.Mail && res.Verb == acl.Discard {
		r = replyContinue
	}
	return r
}

// logACLError logs a run that deferred on an error, with the ACL and
// position that caused it.
func (s *session) logACLError(st acl.Stage, res acl.Result) {
	if res.Err != nil {
		s.logger.Error("ACL error: deferring", "stage", st.String(), "acl", res.ACL, "pos", res.Pos.String(),
			"error", res.Err.Error(), "client", s.clientString(), "queue_id", s.drv.Txn.QueueID)
	}
}

// updateTLS reads the TLS macros (sent at HELO, again after STARTTLS).
func (s *session) updateTLS() {
	c := s.drv.Conn
	if v, ok := s.macros.lookup("tls_version"); ok {
		c.TLSVersion = v
	}
	if v, ok := s.macros.lookup("cipher"); ok {
		c.TLSCipher = v
	}
	if v, ok := s.macros.lookup("cipher_bits"); ok {
		c.TLSBits = v
	}
}
