package tlspolicy

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server answers policy requests on its listeners. On one connection it
// accepts, request by request:
//
//   - socketmap (Postfix socketmap_table(5), Sendmail socket maps): the
//     netstring "NAME KEY", answered "OK value", "NOTFOUND ", "TEMP reason"
//     or "PERM reason"; the connection stays open;
//   - tcp_table (Postfix tcp_table(5)): "get KEY\n" with %XX encoding,
//     answered "200 value", "500 reason" or "400 reason"; the connection
//     stays open;
//   - the line protocol for Exim's ${readsocket}: "dane NEXTHOP",
//     "ocsp HOST", "sts NEXTHOP", "stsignore NEXTHOP" or "policy NEXTHOP",
//     answered with one line, after which the server closes the connection.
type Server struct {
	env func() *Env

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[*conn]bool
	perClient map[netip.Addr]int // open connections per TCP client address
	evicted   *conn              // the idle connection last closed to make room
	wg        sync.WaitGroup
	closing   bool
	active    atomic.Int64
}

// conn is one client connection.
type conn struct {
	c         net.Conn
	idle      atomic.Bool  // waiting for a request: Shutdown may close it at once
	idleSince atomic.Int64 // when it started waiting, Unix nanoseconds
}

// NewServer returns a server that takes the configuration in force from
// env on every connection, so that a reload applies to new connections.
func NewServer(env func() *Env) *Server {
	return &Server{env: env, listeners: map[net.Listener]bool{}, conns: map[*conn]bool{}, perClient: map[netip.Addr]int{}}
}

// Serve accepts connections on l until l is closed or Shutdown is called;
// then it returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		// The connection limit: further clients wait in the listen queue
		// while the connection idle longest is closed to make room (a
		// Postfix client reconnects, as after its own ipc_idle), so that
		// idle connections cannot keep busy ones out.
		for s.active.Load() >= int64(max(s.env().MaxConns, 1)) {
			if s.isClosing() {
				return nil
			}
			s.evictIdle()
			time.Sleep(5 * time.Millisecond)
		}
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		env := s.env()
		if !allowed(c.RemoteAddr(), env.Allow) {
			env.Logger.Warn("policy: client not in policy_allow", "client", c.RemoteAddr().String())
			c.Close()
			continue
		}
		cn := &conn{c: c}
		ip, isTCP := tcpClient(c.RemoteAddr())
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		if isTCP && s.perClient[ip] >= perClientCap(env) {
			s.mu.Unlock()
			env.Logger.Warn("policy: policy_max_connections_per_client reached; closing", "client", c.RemoteAddr().String())
			c.Close()
			continue
		}
		if isTCP {
			s.perClient[ip]++
		}
		s.conns[cn] = true
		s.wg.Add(1)
		s.active.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.active.Add(-1)
			s.handle(cn, env)
			s.mu.Lock()
			delete(s.conns, cn)
			if isTCP {
				if s.perClient[ip]--; s.perClient[ip] <= 0 {
					delete(s.perClient, ip)
				}
			}
			s.mu.Unlock()
		}()
	}
}

// Active returns the number of connections being served.
func (s *Server) Active() int { return int(s.active.Load()) }

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// perClientCap is the per-client connection cap in force.
func perClientCap(env *Env) int {
	if env.MaxConnsPerClient <= 0 || env.MaxConnsPerClient > env.MaxConns {
		return max(env.MaxConns, 1)
	}
	return env.MaxConnsPerClient
}

// evictIdle closes the connection idle longest, unless the one closed last
// time has not gone yet.
func (s *Server) evictIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicted != nil && s.conns[s.evicted] {
		return
	}
	var oldest *conn
	for c := range s.conns {
		if c.idle.Load() && (oldest == nil || c.idleSince.Load() < oldest.idleSince.Load()) {
			oldest = c
		}
	}
	if oldest != nil {
		oldest.c.Close()
		s.evicted = oldest
	}
}

// tcpClient returns the address of a TCP client, and false for a
// unix-socket client.
func tcpClient(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), true
}

// allowed reports whether a client may query: unix-socket clients always,
// TCP clients when their address is in allow.
func allowed(a net.Addr, allow []netip.Prefix) bool {
	ip, isTCP := tcpClient(a)
	if !isTCP {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Shutdown stops accepting, closes idle connections, waits for requests
// in progress until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.idle.Load() {
				c.c.Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.c.Close()
			}
			s.mu.Unlock()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// handle serves one connection until the client closes it, it idles too
// long, a request is malformed, or a line-protocol request was answered.
func (s *Server) handle(cn *conn, env *Env) {
	c := cn.c
	defer c.Close()
	br := bufio.NewReaderSize(c, MaxRequest+64)
	bw := bufio.NewWriterSize(c, 4096)
	client := c.RemoteAddr().String()
	for {
		cn.idleSince.Store(time.Now().UnixNano())
		cn.idle.Store(true)
		if s.isClosing() {
			return
		}
		c.SetReadDeadline(time.Now().Add(env.IdleTimeout))
		first, err := br.Peek(1)
		cn.idle.Store(false)
		if err != nil {
			return
		}
		// The request deadline holds whatever is buffered: a "," or a
		// newline in the buffer does not mean the request is whole (a
		// netstring may declare more than was sent).
		c.SetReadDeadline(time.Now().Add(env.RequestTimeout))
		ctx := context.Background() // decide adds the deadline on a cache miss
		var closeAfter bool
		if '0' <= first[0] && first[0] <= '9' {
			req, err := readNetstring(br, MaxRequest)
			if err != nil {
				if errors.Is(err, ErrTooLong) || errors.Is(err, ErrNetstring) {
					env.Logger.Warn("policy: bad socketmap request", "client", client, "error", err)
					bw.Write(appendNetstring(nil, "PERM "+err.Error()))
					s.flush(c, bw, env)
				}
				return
			}
			bw.Write(appendNetstring(nil, s.socketmap(ctx, env, client, req)))
		} else {
			line, err := readLine(br, MaxRequest)
			if err != nil {
				if errors.Is(err, ErrTooLong) {
					env.Logger.Warn("policy: request line too long", "client", client)
					bw.WriteString("500 request too long\n")
					s.flush(c, bw, env)
				}
				return
			}
			var reply string
			reply, closeAfter = s.lineRequest(ctx, env, client, line)
			bw.WriteString(reply)
		}
		// Pipelined requests are answered together.
		if closeAfter || br.Buffered() == 0 {
			if !s.flush(c, bw, env) {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

func (s *Server) flush(c net.Conn, bw *bufio.Writer, env *Env) bool {
	c.SetWriteDeadline(time.Now().Add(env.RequestTimeout))
	return bw.Flush() == nil
}

// decide returns the decision for a key. The first request answered with
// a decision made from DNS logs it at info (a failure at warn), with the
// attributes TLS reports read; the others log at debug how the cache
// answered them and its counters.
func (s *Server) decide(ctx context.Context, env *Env, client, proto, key string) (d *Decision, err error) {
	if obs := env.Observer; obs != nil {
		start := time.Now()
		defer func() { obs.PolicyAnswered(proto, d, err, time.Since(start)) }()
	}
	h, err := ParseNextHop(key)
	if err != nil {
		return nil, err
	}
	a := env.Decider.lookup(ctx, h, env.RequestTimeout)
	d = a.d
	switch {
	case a.first && d.Level == LevelTemp:
		env.Logger.Warn("policy", append([]any{"proto", proto, "client", client, "nexthop", h.String(), "policy", d.Level.String(),
			"cache", a.result.String()}, append(d.reportAttrs(), "reason", d.Reason)...)...)
	case a.first:
		env.Logger.Info("policy", append([]any{"proto", proto, "client", client, "nexthop", h.String(), "policy", d.Level.String(),
			"ocsp", d.OCSP.String(), "tlsa_usage", d.UsageBits, "cache", a.result.String()}, append(d.reportAttrs(), "reason", d.Reason)...)...)
	case env.Logger.Enabled(ctx, slog.LevelDebug):
		st := env.Decider.Stats()
		env.Logger.Debug("policy", "proto", proto, "client", client, "nexthop", h.String(), "policy", d.Level.String(),
			"cache", a.result.String(), "hits", st.CacheHits, "stale", st.Stale, "misses", st.Misses, "waits", st.Shared,
			"refreshes", st.Refreshes, "failures", st.Failures, "decisions", st.Decisions)
	}
	return d, nil
}

// socketmap answers "NAME KEY". The map name chooses the vocabulary:
// "ocsp" answers require/request/none, "dane" and "exim" answer
// require/try/none, any other name (such as "policy") answers Postfix's
// smtp_tls_policy_maps levels.
func (s *Server) socketmap(ctx context.Context, env *Env, client, req string) string {
	name, key, ok := strings.Cut(req, " ")
	if !ok || name == "" || key == "" {
		return "PERM expected \"NAME KEY\""
	}
	key = strings.ToLower(key)
	if strings.HasPrefix(key, ".") {
		// Postfix's parent-domain lookup after NOTFOUND for a subdomain:
		// the subdomain's own DNS decided already.
		return "NOTFOUND "
	}
	if name == "ocsp" && !strings.HasPrefix(key, "[") {
		key = "[" + key + "]"
	}
	d, err := s.decide(ctx, env, client, "socketmap", key)
	if err != nil {
		return "NOTFOUND "
	}
	switch name {
	case "ocsp":
		return "OK " + d.OCSP.String()
	case "dane", "exim":
		if d.Level == LevelTemp {
			return "TEMP " + oneLine(d.Reason)
		}
		return "OK " + d.Level.Exim()
	case "sts":
		switch ans := d.EximSTS(); {
		case d.Level == LevelTemp:
			return "TEMP " + oneLine(d.Reason)
		case d.Level == LevelSecure:
			return "OK " + ans
		}
		return "NOTFOUND "
	}
	switch d.Level {
	case LevelTemp:
		return "TEMP " + oneLine(d.Reason)
	case LevelNone:
		return "NOTFOUND "
	}
	return "OK " + d.Postfix()
}

// lineRequest answers a tcp_table request ("get KEY") or a line-protocol
// request. closeAfter is true for the line protocol, whose client reads
// until the connection closes.
func (s *Server) lineRequest(ctx context.Context, env *Env, client, line string) (reply string, closeAfter bool) {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "get":
		return s.tcpTable(ctx, env, client, arg), false
	case "put":
		return "500 the policy table is read-only\n", false
	case "dane", "ocsp", "policy", "sts", "stsignore":
	default:
		return "defer unknown request: use dane NEXTHOP, ocsp HOST, sts NEXTHOP, stsignore NEXTHOP or policy NEXTHOP\n", true
	}
	key := strings.ToLower(strings.TrimSpace(arg))
	if verb == "ocsp" && !strings.HasPrefix(key, "[") {
		key = "[" + key + "]"
	}
	d, err := s.decide(ctx, env, client, "line", key)
	if err != nil {
		if verb == "ocsp" {
			return "request " + oneLine(err.Error()) + "\n", true
		}
		return "defer " + oneLine(err.Error()) + "\n", true
	}
	var tok string
	switch verb {
	case "sts":
		return d.EximSTS() + "\n", true
	case "stsignore":
		return d.EximIgnoreHosts() + "\n", true
	case "dane":
		tok = d.Level.Exim()
	case "ocsp":
		return d.OCSP.String() + " " + oneLine(env.Decider.Rules().OCSPReason(d)) + "\n", true
	case "policy":
		tok = d.Level.String()
	}
	return tok + " " + oneLine(d.Reason) + "\n", true
}

// tcpTable answers "get KEY" of Postfix's tcp_table(5).
func (s *Server) tcpTable(ctx context.Context, env *Env, client, arg string) string {
	key, err := decodeTCPTable(arg)
	if err != nil || key == "" {
		return "500 malformed%20key\n"
	}
	key = strings.ToLower(key)
	if strings.HasPrefix(key, ".") {
		return "500 no%20policy\n"
	}
	d, err := s.decide(ctx, env, client, "tcp_table", key)
	if err != nil {
		return "500 " + encodeTCPTable(err.Error()) + "\n"
	}
	switch d.Level {
	case LevelTemp:
		return "400 " + encodeTCPTable(oneLine(d.Reason)) + "\n"
	case LevelNone:
		return "500 no%20policy\n"
	}
	return "200 " + encodeTCPTable(d.Postfix()) + "\n"
}
