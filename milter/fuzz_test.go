package milter

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/acl"
)

// memConn is an MTA connection whose bytes come from a fuzz input.
type memConn struct {
	r      *bytes.Reader
	mu     sync.Mutex
	closed bool
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}
func (c *memConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8894} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// oneConnListener accepts one connection, then waits until it is closed.
type oneConnListener struct {
	conn   net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}
func (l *oneConnListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}
func (l *oneConnListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8894}
}

// transactionBytes is a whole Postfix-like milter session.
func transactionBytes() []byte {
	var b []byte
	for _, p := range [][]byte{
		packet('O', u32(6, postfixActions, postfixProtocol)),
		packet('D', []byte{'C'}, cstr("j", "mx", "{daemon_addr}", "192.0.2.25", "{daemon_port}", "25")),
		connectPacket("client.example.org", '4', 40000, "192.0.2.10"),
		packet('D', []byte{'H'}, cstr("{tls_version}", "TLSv1.3")),
		packet('H', cstr("client.example.org")),
		packet('D', []byte{'M'}, cstr("i", "Q1", "{auth_authen}", "alice")),
		packet('M', cstr("<sender@example.org>", "SIZE=100")),
		packet('R', cstr("<rcpt@example.net>")),
		packet('R', cstr("<nobody@example.net>")),
		packet('D', []byte{'T'}, cstr("i", "Q1")),
		packet('L', cstr("Subject", " hi")),
		packet('L', cstr("Authentication-Results", " mx.example.net; dkim=pass")),
		packet('L', cstr("X-Remove-Me", " x\n folded")),
		packet('N'),
		packet('B', []byte("body\r\n")),
		packet('E'),
		packet('M', cstr("<>")),
		packet('A'),
		packet('K'),
		connectPacket("[IPv6:2001:db8::1]", '6', 25, "IPv6:2001:db8::1"),
		packet('Q'),
	} {
		b = append(b, p...)
	}
	return b
}

// FuzzFrameGuard feeds arbitrary bytes to a whole session, as if from the
// MTA: the frame guard, the packet handlers, go-milter and the ACL stages
// must never panic, never hang, and always end the session.
func FuzzFrameGuard(f *testing.F) {
	full := transactionBytes()
	f.Add(full)
	f.Add(full[:len(full)/2])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 'L'})
	f.Add(append(packet('O', u32(2, 0x3f, 0x7f)), packet('C', cstr("h"), []byte{'6'})...))
	f.Add(append(packet('O', u32(6, 0, 0)), packet('L', []byte("no nul"))...))
	prog := compileProgram(f, testConf, nil)
	env := &Env{Program: prog, Services: &acl.Services{PrimaryHostname: "mx.example.net"}, AuthservID: "mx.example.net",
		StripIDs: []string{"old.example"},
		BodyHooks: []BodyHook{func(*acl.Txn) BodyWriter {
			return &recordWriter{done: func(string, bool) {}}
		}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := NewServer(func() *Env { return env })
		l := &oneConnListener{conn: &memConn{r: bytes.NewReader(data)}, closed: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Once the session is accepted, Shutdown waits for it to end on its
		// own: its input runs out.
		for srv.nextID.Load() == 0 {
			if ctx.Err() != nil {
				t.Fatal("session not accepted")
			}
			runtime.Gosched()
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("session did not end: %v", err)
		}
		<-done
		if n := srv.panics.Load(); n != 0 {
			t.Fatalf("%d panics", n)
		}
	})
}

var _ io.Reader = (*memConn)(nil)
