package milter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
)

// Env is the running configuration. It may be replaced (SIGHUP) between
// sessions; a session takes it once, when the MTA connects, and keeps it.
type Env struct {
	Program    *acl.Program
	Services   *acl.Services
	Logger     *slog.Logger
	AuthservID string     // authserv-id of our Authentication-Results header; "" adds none
	StripIDs   []string   // other authserv-ids whose Authentication-Results headers are removed
	BodyHooks  []BodyHook // extra body consumers (tests)
	Limits     Limits     // who may connect and how many; read at each accept
	// Observer hears of stage runs and ended messages (metrics); nil
	// hears nothing.
	Observer stage.Observer
}

// BodyHook starts a consumer of one message's body, in addition to the
// ones the Program's features registered (acl.Registry.AddBodyHook). It is
// called at the end of the headers, when Txn.Headers is complete, and
// returns nil when it has nothing to do for this message.
type BodyHook func(t *acl.Txn) BodyWriter

// BodyWriter receives the body as it streams past (acl.BodyWriter).
type BodyWriter = acl.BodyWriter

// Defaults for the Server's timeouts.
const (
	DefaultIdleTimeout  = time.Hour
	DefaultStageTimeout = 25 * time.Second // under Postfix's milter_command_timeout (30s)
	DefaultWriteTimeout = 30 * time.Second
)

// Server runs milter sessions on any number of listeners.
type Server struct {
	// Timeouts; set before Serve. IdleTimeout bounds the wait for the MTA's
	// next packet; StageTimeout bounds the ACL run of one stage (a run
	// that passes it defers); WriteTimeout bounds writing a reply.
	IdleTimeout, StageTimeout, WriteTimeout time.Duration

	env func() *Env

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup

	open      int                 // connections admitted and not yet closed
	perClient map[netip.Addr]int  // of open, per TCP client address
	refusals  map[string]*refusal // refused connections by reason, for the log

	nextID atomic.Uint64
	panics atomic.Int64 // recovered panics, for tests
}

// NewServer returns a server that takes the configuration from env for
// each new session.
func NewServer(env func() *Env) *Server {
	return &Server{
		env:          env,
		IdleTimeout:  DefaultIdleTimeout,
		StageTimeout: DefaultStageTimeout,
		WriteTimeout: DefaultWriteTimeout,
		listeners:    map[net.Listener]struct{}{},
		sessions:     map[*session]struct{}{},
	}
}

// Serve accepts MTA connections on l until l is closed (then it returns
// nil) or Shutdown is called. Each listener gets its own go-milter server:
// one go-milter server shared by several listeners races on its list of
// listeners.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	gl := &listener{Listener: l, srv: s}
	ms := &gomilter.Server{
		NewMilter: gl.newMilter,
		Actions:   wantActions,
		Protocol:  wantProtocol,
	}
	err := ms.Serve(gl)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing || errors.Is(err, net.ErrClosed) || errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, waits for the open sessions to end until ctx is
// done, then closes them (the MTA applies its milter_default_action to
// what was in progress) and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.kill()
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return ctx.Err()
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// listener hands go-milter guarded connections and binds each to the
// handler go-milter creates for it. go-milter calls NewMilter right after
// Accept in its accept loop, so the session accepted last is the one the
// new handler belongs to.
type listener struct {
	net.Listener
	srv     *Server
	pending *session
}

// Accept accepts the next MTA connection and starts its session. Temporary
// errors (out of file descriptors) are retried rather than ending Serve.
func (l *listener) Accept() (net.Conn, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporaryAcceptError(err) {
				return nil, err
			}
			l.srv.logger().Warn("milter accept failed; retrying", "error", err.Error(), "retry_in", delay)
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		env := l.srv.env()
		var lim Limits
		if env != nil {
			lim = env.Limits
		}
		lim = lim.withDefaults(l.srv.IdleTimeout)
		client, why := l.srv.admit(c, lim)
		if why != "" {
			// Closed at once: the MTA applies its milter_default_action
			// now rather than after its connect timeout.
			l.srv.refused(l.srv.logger(), c, why)
			c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true) // Go's default; replies must not wait on Nagle
		}
		sess := l.srv.newSession(c)
		if sess == nil {
			l.srv.leave(client)
			c.Close()
			return nil, net.ErrClosed
		}
		sess.fc.admitted(client, lim)
		l.pending = sess
		return sess.fc, nil
	}
}

func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// newMilter is go-milter's NewMilter. A handler asked for at any other
// time (go-milter replacing one, which our replies never ask for) has no
// session and answers tempfail.
func (l *listener) newMilter() gomilter.Milter {
	sess := l.pending
	l.pending = nil
	if sess == nil {
		l.srv.panics.Add(1)
		l.srv.logger().Error("milter: go-milter asked for a handler outside accept; answering tempfail")
		return orphan{}
	}
	return sess
}

// logger returns the logger of the configuration in force.
func (s *Server) logger() *slog.Logger {
	if e := s.env(); e != nil && e.Logger != nil {
		return e.Logger
	}
	return discardLogger
}

var discardLogger = slog.New(slog.DiscardHandler)
