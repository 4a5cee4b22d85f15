package tlspolicy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of one connection.
const (
	MaxRequest  = 4096             // bytes of one request
	IdleTimeout = 60 * time.Second // between requests on one connection
)

// Server answers policy requests on its listeners.
type Server struct {
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
	wg        sync.WaitGroup
	closing   bool
}

// NewServer returns a server that logs to logger.
func NewServer(logger *slog.Logger) *Server {
	return &Server{Logger: logger, listeners: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}
}

// Serve accepts connections on l until l is closed or Shutdown is called.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			delete(s.listeners, l)
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.mu.Lock()
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting and waits for open connections until ctx is
// done, then closes them.
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
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, MaxRequest)
	for {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
		first, err := br.Peek(1)
		if err != nil {
			return
		}
		var reply string
		if first[0] >= '0' && first[0] <= '9' {
			req, err := readNetstring(br, MaxRequest)
			if err != nil {
				s.Logger.Warn("policy: bad socketmap request", "client", c.RemoteAddr().String(), "error", err)
				io.WriteString(c, netstring("PERM "+err.Error()))
				return
			}
			reply = netstring(s.socketmap(req))
		} else {
			line, err := readLine(br, MaxRequest)
			if err != nil {
				return
			}
			reply = s.lineRequest(line)
		}
		c.SetWriteDeadline(time.Now().Add(IdleTimeout))
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// socketmap answers "NAME KEY" (Postfix/Sendmail socketmap).
func (s *Server) socketmap(req string) string {
	name, key, ok := strings.Cut(req, " ")
	if !ok || key == "" {
		return "PERM expected \"mapname key\""
	}
	s.Logger.Debug("policy: socketmap lookup", "map", name, "key", key)
	return "NOTFOUND "
}

// lineRequest answers Postfix tcp_table ("get KEY") and the line protocol
// for Exim ("dane NEXTHOP").
func (s *Server) lineRequest(line string) string {
	if key, ok := strings.CutPrefix(line, "get "); ok {
		s.Logger.Debug("policy: tcp_table lookup", "key", key)
		return "500 no-policy\n"
	}
	return "none\n"
}

func readLine(br *bufio.Reader, max int) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	if len(line) > max {
		return "", errors.New("request too long")
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// readNetstring reads "LEN:DATA," (djb netstrings, as socketmap uses).
func readNetstring(br *bufio.Reader, max int) (string, error) {
	n := 0
	for i := 0; ; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		if b == ':' && i > 0 {
			break
		}
		if b < '0' || b > '9' || i >= 7 || (i == 1 && n == 0) {
			return "", errors.New("bad netstring length")
		}
		n = n*10 + int(b-'0')
	}
	if n > max {
		return "", errors.New("request too long")
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	if buf[n] != ',' {
		return "", errors.New("netstring not terminated by ','")
	}
	return string(buf[:n]), nil
}

func netstring(s string) string { return strconv.Itoa(len(s)) + ":" + s + "," }
