package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// Bounds of what one message keeps: header fields, and refused recipients
// remembered for the log.
const (
	maxHeaderBytes    = 4 << 20
	maxRejectedLogged = 1000
)

// session is one MTA connection. go-milter calls its methods (it is the
// handler object) from one goroutine, the same one that reads packets
// through frameConn, so its state needs no lock. Connection state (the
// acl.Conn) lives from SMFIC_CONNECT to the end; transaction state (the
// acl.Txn fields and msg) from MAIL to the end of the message.
type session struct {
	srv    *Server
	env    *Env
	logger *slog.Logger
	fc     *frameConn
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc

	neg    negotiation
	macros macros
	peer   peerInfo // from the last SMFIC_CONNECT

	conn        *acl.Conn
	txn         *acl.Txn
	connVerdict *decision // a verdict other than accept at connect or HELO
	discardAll  bool      // discard at connect or HELO: discard every message
	loggedLogs  int       // txn.Logs already written to the log
	msg         message
	closing     bool // close the connection after the queued reply (drop)
	ended       bool
}

// peerInfo is the SMFIC_CONNECT packet as the MTA sent it.
type peerInfo struct {
	host   string
	family byte
	port   uint16
	addr   string
}

// message is the state of one transaction, from MAIL on.
type message struct {
	open        bool // MAIL seen and not yet logged
	start       time.Time
	verdict     *decision // the verdict at MAIL or end of message
	rejected    []rcptVerdict
	discarded   []string
	failure     error // an internal error where no reply could be sent
	size        int64
	headerBytes int
	bodyStarted bool
	hooks       []BodyWriter
	quarantine  string
	edits       []string // header edits made, for the log
}

type rcptVerdict struct {
	rcpt string
	res  acl.Result
}

// decision is a verdict and where it was made.
type decision struct {
	stage acl.Stage
	res   acl.Result
}

func (s *Server) newSession(c net.Conn) *session {
	env := s.env()
	if env == nil {
		env = &Env{}
	}
	logger := env.Logger
	if logger == nil {
		logger = discardLogger
	}
	sess := &session{srv: s, env: env, logger: logger, id: s.nextID.Add(1), neg: defaultNegotiation}
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	sess.conn = &acl.Conn{}
	sess.txn = acl.NewTxn(sess.conn, env.Services)
	sess.fc = newFrameConn(c, sess, s.IdleTimeout, s.WriteTimeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		sess.cancel()
		return nil
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return sess
}

// kill closes the MTA's connection from outside the session goroutine
// (Shutdown): the session's next read fails and it ends.
func (s *session) kill() {
	s.cancel()
	s.fc.Conn.Close()
}

// end runs once, when go-milter closes the connection.
func (s *session) end() {
	if s.ended {
		return
	}
	s.ended = true
	func() {
		defer func() {
			if v := recover(); v != nil {
				s.internalPanic("close", v)
			}
		}()
		s.endConnection("connection closed")
	}()
	s.cancel()
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	s.srv.wg.Done()
}

// endConnection logs what is still open: the transaction, then the
// connection's own verdicts and logs.
func (s *session) endConnection(why string) {
	if s.msg.open {
		s.abortBody()
		s.logTxn(why)
	}
	s.msg = message{}
	if s.connVerdict != nil || len(s.txn.Logs) > s.loggedLogs {
		s.logSession()
	}
}

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
		n, reply, err := negotiate(p)
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
		return true, nil
	case 'H', 'M', 'R', 'A', 'Q':
		return true, nil
	case 'E':
		if len(p) > 0 { // a last body chunk may ride on end of body
			s.guard("body", func() { s.bodyChunk(p) })
		}
		return true, nil
	case 'L':
		name, value, err := parseHeader(p)
		if err != nil {
			return false, err
		}
		s.guard("header", func() { s.header(name, value) })
		s.answer(gomilter.OptNoHeaderReply)
	case 'N':
		s.guard("end of headers", s.startBody)
		s.answer(gomilter.OptNoEOHReply)
	case 'B':
		s.guard("body", func() { s.bodyChunk(p) })
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

// answer continues an event, unless it was negotiated as unanswered.
func (s *session) answer(noReply gomilter.OptProtocol) {
	if !s.neg.has(noReply) {
		s.fc.writePacket(byte(gomilter.ActContinue), nil)
	}
}

// guard runs f, turning a panic into a failure of the message (tempfail at
// its end), for the events that get no reply.
func (s *session) guard(where string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			s.internalPanic(where, v)
			if s.msg.failure == nil {
				s.msg.failure = fmt.Errorf("internal error in %s: %v", where, v)
			}
		}
	}()
	f()
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

// newConnection starts the connection state afresh.
func (s *session) newConnection() {
	s.conn = &acl.Conn{}
	s.txn = acl.NewTxn(s.conn, s.env.Services)
	s.connVerdict, s.discardAll, s.loggedLogs = nil, false, 0
	s.msg = message{}
}

// --- go-milter callbacks -------------------------------------------------

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
		s.guard("end of headers", s.startBody)
	}
	s.guard("end of body", s.endBody)
	s.txn.MessageSize = s.msg.size
	if q := s.macros.get("i"); q != "" {
		s.txn.QueueID = q
	}
	var res acl.Result
	if s.msg.failure != nil {
		res = acl.Result{Verb: acl.Defer, Err: s.msg.failure}
	} else {
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

// --- stages ----------------------------------------------------------------

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
	ctx, cancel := s.ctx, context.CancelFunc(nil)
	if s.srv.StageTimeout > 0 {
		ctx, cancel = context.WithTimeout(s.ctx, s.srv.StageTimeout)
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

// header records one header field. Its value keeps its exact bytes after
// the colon (the leading space included, negotiated with
// SMFIP_HDR_LEADSPC); line breaks, which the MTAs send as LF, are written
// as CRLF, as on the wire.
func (s *session) header(name, value string) {
	if !s.neg.has(gomilter.OptHeaderLeadingSpace) && value != "" {
		// The MTA dropped the space after the colon; put the usual one back.
		value = " " + value
	}
	if strings.IndexByte(value, '\n') >= 0 {
		value = lfToCRLF(value)
	}
	n := len(name) + 1 + len(value) + 2
	s.msg.size += int64(n)
	s.msg.headerBytes += n
	if s.msg.headerBytes > maxHeaderBytes {
		if s.msg.failure == nil {
			s.msg.failure = fmt.Errorf("header fields exceed %d bytes", maxHeaderBytes)
		}
		return
	}
	s.txn.Headers = append(s.txn.Headers, acl.Header{Name: name, Value: value})
}

// lfToCRLF turns bare LF into CRLF.
func lfToCRLF(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// startBody starts the body writers, at the end of the headers.
func (s *session) startBody() {
	if s.msg.bodyStarted {
		return
	}
	s.msg.bodyStarted = true
	s.msg.size += 2 // the empty line
	for _, hook := range s.env.BodyHooks {
		if w := hook(s.txn); w != nil {
			s.msg.hooks = append(s.msg.hooks, w)
		}
	}
}

// bodyChunk passes a body chunk to the writers and counts it; nothing of
// the body is kept.
func (s *session) bodyChunk(p []byte) {
	if !s.msg.bodyStarted {
		s.startBody()
	}
	s.msg.size += int64(len(p))
	for i, w := range s.msg.hooks {
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			s.logger.Warn("body writer failed; dropping it for this message", "error", err.Error(), "queue_id", s.txn.QueueID)
			w.Abort()
			s.msg.hooks[i] = nil
		}
	}
}

// endBody tells the body writers the message is complete.
func (s *session) endBody() {
	hooks := s.msg.hooks
	s.msg.hooks = nil
	for _, w := range hooks {
		if w == nil {
			continue
		}
		if err := w.End(); err != nil {
			s.logger.Warn("body writer failed at end of message", "error", err.Error(), "queue_id", s.txn.QueueID)
		}
	}
}

// abortBody drops the body writers of an unfinished message.
func (s *session) abortBody() {
	hooks := s.msg.hooks
	s.msg.hooks = nil
	for _, w := range hooks {
		if w != nil {
			s.guard("body abort", w.Abort)
		}
	}
}

// --- logging and failures ----------------------------------------------

func (s *session) internalPanic(where string, v any) {
	s.srv.panics.Add(1)
	s.logger.Error("internal error: answering tempfail", "where", where, "panic", fmt.Sprint(v),
		"client", s.clientString(), "queue_id", s.txn.QueueID, "stack", string(debug.Stack()))
}

// connError logs why the connection ended early.
func (s *session) connError(op string, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, errFrame):
		s.logger.Warn("milter connection closed: bad frame from the MTA", "error", err.Error(), "client", s.clientString())
	default:
		s.logger.Info("milter connection ended", "op", op, "error", err.Error(), "client", s.clientString())
	}
}

func (s *session) clientString() string {
	if s.conn == nil || !s.conn.ClientIP.IsValid() {
		return "local"
	}
	return s.conn.ClientIP.String()
}
