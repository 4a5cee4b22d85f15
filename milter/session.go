package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

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
	connFailure error     // an internal error at an unanswered connect or HELO: tempfail every message
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
	s.txn.Close()
	s.msg = message{}
	if s.connVerdict != nil || len(s.txn.Logs) > s.loggedLogs {
		s.logSession()
	}
}

// newConnection starts the connection state afresh.
func (s *session) newConnection() {
	s.txn.Close()
	s.conn = &acl.Conn{}
	s.txn = acl.NewTxn(s.conn, s.env.Services)
	s.connVerdict, s.discardAll, s.loggedLogs = nil, false, 0
	s.msg = message{}
}

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
