package milter

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// Connect runs the connect ACL.
func (s *session) Connect(_ string, _ string, _ uint16, _ net.IP, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("connect", &resp)
	if s.msg.open || len(s.txn.Logs) > 0 {
		s.endConnection("connection closed")
	}
	s.newConnection()
	c := s.conn
	if s.peer.family == '4' || s.peer.family == '6' {
		c.ClientIP = parseAddr(s.peer.addr)
		c.ClientPort = int(s.peer.port)
	}
	if !c.ClientIP.IsValid() && s.peer.family != 'L' {
		if a := parseAddr(s.macros.get("client_addr")); a.IsValid() {
			c.ClientIP = a
			c.ClientPort, _ = strconv.Atoi(s.macros.get("client_port"))
		}
	}
	c.ClientName = clientName(s.peer.host)
	for _, m := range []string{"daemon_addr", "if_addr"} {
		if a := parseAddr(s.macros.get(m)); a.IsValid() {
			c.LocalIP = a
			break
		}
	}
	c.LocalPort, _ = strconv.Atoi(s.macros.get("daemon_port"))
	return s.stage(acl.Connect), nil
}

// Helo runs the HELO ACL.
func (s *session) Helo(name string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("helo", &resp)
	s.conn.Helo = name
	s.updateTLS()
	return s.stage(acl.Helo), nil
}

// MailFrom starts a transaction and runs the MAIL ACL. The previous
// transaction ends here if the MTA sent no ABORT (Sendmail).
func (s *session) MailFrom(from string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("mail", &resp)
	if s.msg.open {
		s.abortBody()
		s.logTxn("aborted")
	}
	carry := s.txn.Logs[min(s.loggedLogs, len(s.txn.Logs)):]
	carry = append([]acl.LogLine(nil), carry...)
	s.txn.Reset()
	s.txn.Logs, s.loggedLogs = carry, 0
	s.msg = message{open: true, start: time.Now()}
	s.txn.HasSender = true
	s.txn.Sender = strings.TrimSpace(from)
	s.txn.QueueID = s.macros.get("i")
	if v, ok := s.macros.lookup("auth_authen"); ok {
		s.conn.AuthID = v
	}
	s.updateTLS()
	if s.discardAll {
		s.msg.verdict = &decision{acl.Mail, acl.Result{Verb: acl.Discard, ACL: s.connVerdict.res.ACL, Pos: s.connVerdict.res.Pos}}
		return replyDiscard, nil
	}
	return s.stage(acl.Mail), nil
}

// RcptTo runs the RCPT ACL for one recipient. A rejection answers for this
// recipient only; the transaction goes on.
func (s *session) RcptTo(rcpt string, _ *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("rcpt", &resp)
	s.txn.Rcpt = strings.TrimSpace(rcpt)
	if q := s.macros.get("i"); q != "" {
		s.txn.QueueID = q
	}
	return s.stage(acl.Rcpt), nil
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
// runs, and on accept the queued header edits go out before the reply.
func (s *session) Body(m *gomilter.Modifier) (resp gomilter.Response, err error) {
	defer s.recoverReply("end of message", &resp)
	if !s.msg.bodyStarted {
		s.startBody()
	}
	s.endBody()
	s.txn.MessageSize = s.msg.size
	if q := s.macros.get("i"); q != "" {
		s.txn.QueueID = q
	}
	var res acl.Result
	switch {
	case s.msg.failure != nil:
		res = acl.Result{Verb: acl.Defer, Err: s.msg.failure}
	case s.connFailure != nil:
		res = acl.Result{Verb: acl.Defer, Err: s.connFailure}
	default:
		res = s.run(acl.Data)
	}
	r, closeAfter := verdictReply(res)
	verdict := ""
	if res.Verb == acl.Accept {
		switch {
		case len(s.msg.discarded) > 0 && len(s.msg.discarded) >= len(s.txn.Recipients):
			r, verdict = replyDiscard, "discard"
		default:
			s.finishMessage(m)
		}
	}
	s.msg.verdict = &decision{acl.Data, res}
	s.logTxn(verdict)
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
	if s.msg.open {
		s.abortBody()
		s.logTxn("aborted")
	}
	s.txn.Close()
	s.msg = message{}
	return nil
}

// recoverReply turns a panic in a callback into tempfail.
func (s *session) recoverReply(where string, resp *gomilter.Response) {
	if v := recover(); v != nil {
		s.internalPanic(where, v)
		*resp = replyTempfail
		if s.msg.open && s.msg.verdict == nil {
			s.msg.verdict = &decision{res: acl.Result{Verb: acl.Defer, Err: fmt.Errorf("internal error in %s: %v", where, v)}}
		}
	}
}

// stage runs the ACL of an envelope stage and turns its verdict into the
// reply.
func (s *session) stage(st acl.Stage) gomilter.Response {
	res := s.run(st)
	r, closeAfter := verdictReply(res)
	s.closing = s.closing || closeAfter
	switch st {
	case acl.Connect, acl.Helo:
		if res.Verb == acl.Discard {
			// A milter cannot discard a connection: discard its messages.
			s.discardAll = true
			r = replyContinue
		}
		if res.Verb != acl.Accept {
			s.connVerdict = &decision{st, res}
		}
	case acl.Mail:
		if res.Verb != acl.Accept {
			s.msg.verdict = &decision{st, res}
		}
	case acl.Rcpt:
		switch res.Verb {
		case acl.Accept:
			s.txn.Recipients = append(s.txn.Recipients, s.txn.Rcpt)
		case acl.Discard:
			// Exim's discard at RCPT drops this recipient only (milter's
			// discard would drop the whole message): accept it now, remove
			// it at the end of the message.
			s.txn.Recipients = append(s.txn.Recipients, s.txn.Rcpt)
			s.msg.discarded = append(s.msg.discarded, s.txn.Rcpt)
			r = replyContinue
		default:
			if len(s.msg.rejected) < maxRejectedLogged {
				s.msg.rejected = append(s.msg.rejected, rcptVerdict{s.txn.Rcpt, res})
			}
		}
		s.txn.Rcpt = ""
	}
	return r
}

// run runs the ACL of a stage with the stage's deadline. Errors are logged
// with the ACL and position that caused them.
func (s *session) run(st acl.Stage) (res acl.Result) {
	prog := s.env.Program
	if prog == nil {
		return acl.Result{Verb: acl.Accept}
	}
	ctx := s.ctx
	if st := s.srv.StageTimeout; st > 0 && (prog.Timeout() <= 0 || prog.Timeout() > st) {
		// acl_timeout, when shorter, already bounds the run.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(s.ctx, st)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			s.internalPanic(st.String()+" ACL", v)
			res = acl.Result{Verb: acl.Defer, Err: fmt.Errorf("internal error: %v", v)}
		}
	}()
	res = prog.Run(ctx, st, s.txn)
	switch res.Verb {
	case acl.Accept, acl.Deny, acl.Defer, acl.Discard, acl.Drop:
	default:
		res = acl.Result{Verb: acl.Defer, ACL: res.ACL, Pos: res.Pos, Err: fmt.Errorf("ACL returned %q", res.Verb)}
	}
	if res.Err != nil {
		s.logger.Error("ACL error: deferring", "stage", st.String(), "acl", res.ACL, "pos", res.Pos.String(),
			"error", res.Err.Error(), "client", s.clientString(), "queue_id", s.txn.QueueID)
	}
	return res
}

// updateTLS reads the TLS macros (sent at HELO, again after STARTTLS).
func (s *session) updateTLS() {
	if v, ok := s.macros.lookup("tls_version"); ok {
		s.conn.TLSVersion = v
	}
	if v, ok := s.macros.lookup("cipher"); ok {
		s.conn.TLSCipher = v
	}
	if v, ok := s.macros.lookup("cipher_bits"); ok {
		s.conn.TLSBits = v
	}
}
