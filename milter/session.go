package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
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
	// esmtpArgs are the ESMTP parameters of the last MAIL or RCPT packet.
	esmtpArgs []string

	drv *stage.Driver // the SMTP connection and its transaction
	// txnOpen: a transaction was started (MAIL) and not yet logged.
	txnOpen bool
	// edits and quarantine are what the MTA was told to do with the
	// message, for its log line.
	edits      []string
	quarantine string
	closing    bool // close the connection after the queued reply (drop)
	ended      bool
}

// peerInfo is the SMFIC_CONNECT packet as the MTA sent it.
type peerInfo struct {
	host   string
	family byte
	port   uint16
	addr   string
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
	sess.drv = stage.New(sess.stageEnv())
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
// connection's own verdicts and logs; the message is closed.
func (s *session) endConnection(why string) {
	if s.txnOpen {
		s.drv.EndOpen()
		s.logTxn(why)
	}
	if s.drv.ConnVerdict != nil || len(s.drv.Unlogged()) > 0 {
		s.logSession()
	}
	s.drv.Close()
}

// newConnection starts the connection state afresh (QUIT_NC).
func (s *session) newConnection() {
	s.drv.Close()
	s.drv = stage.New(s.stageEnv())
	s.txnOpen = false
}

// stageEnv is the driver's share of the session's configuration.
func (s *session) stageEnv() *stage.Env {
	e := s.env
	var hooks []acl.BodyHook
	for i, h := range e.BodyHooks {
		hooks = append(hooks, acl.BodyHook{Name: "milter body hook " + strconv.Itoa(i), Start: h})
	}
	st := s.srv.StageTimeout
	return &stage.Env{Program: e.Program, Services: e.Services, AuthservID: e.AuthservID, StripIDs: e.StripIDs,
		StageTimeout: st, BodyHooks: hooks, Panic: s.internalPanic, Observer: wireTimed(e.Observer)}
}

func (s *session) internalPanic(where string, v any) {
	s.srv.panics.Add(1)
	s.logger.Error("internal error: answering tempfail", "where", where, "panic", fmt.Sprint(v),
		"client", s.clientString(), "queue_id", s.queueID(), "stack", string(debug.Stack()))
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
	if s.drv == nil || !s.drv.Conn.ClientIP.IsValid() {
		return "local"
	}
	return s.drv.Conn.ClientIP.String()
}

func (s *session) queueID() string {
	if s.drv == nil {
		return ""
	}
	return s.drv.Txn.QueueID
}

// wireTimed passes the driver's observations on, but for the stage
// timings: the milter times stages itself, from the packet to the reply
// on the wire (frameConn.next).
func wireTimed(o stage.Observer) stage.Observer {
	if o == nil {
		return nil
	}
	return wireTimedObserver{o}
}

type wireTimedObserver struct{ stage.Observer }

func (wireTimedObserver) StageDone(acl.Stage, time.Duration) {}
