package milter

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

// The options this package owns: who may connect and how much of the
// daemon a connection may hold.
func init() {
	for _, d := range []config.OptionDef{
		{Name: "milter_allow", Kind: config.KindNetList, Default: "<; 127.0.0.0/8 ; ::1", Doc: "MTA addresses allowed to connect to the milter over TCP (unix sockets are governed by milter_socket_mode)"},
		{Name: "milter_max_connections", Kind: config.KindInt, Default: "1000", Min: 1, Max: 1_000_000, Doc: "open milter connections at most (one per SMTP session); further connections are closed at once and the MTA applies its milter_default_action"},
		{Name: "milter_max_connections_per_client", Kind: config.KindInt, Default: "0", Min: 0, Max: 1_000_000, Doc: "open milter connections from one MTA address at most; 0 means milter_max_connections (unix-socket clients count only against milter_max_connections)"},
		{Name: "milter_idle_timeout", Kind: config.KindDuration, Default: "1h", Doc: "how long the milter waits for the MTA's next packet (an SMTP session may idle as long as the MTA lets it)"},
		{Name: "milter_frame_timeout", Kind: config.KindDuration, Default: "10s", Doc: "time to receive the rest of a milter packet once its first byte arrived"},
	} {
		config.RegisterOption(d)
	}
}

// Defaults of Limits.
const (
	DefaultMaxConns     = 1000
	DefaultFrameTimeout = 10 * time.Second
)

// DefaultAllow is the default milter_allow: loopback only.
var DefaultAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Limits bound what MTA connections may take. The zero value of a field
// means its default; Allow nil means DefaultAllow.
type Limits struct {
	Allow        []netip.Prefix // TCP clients allowed; unix-socket clients always are
	MaxConns     int            // open connections at most
	MaxPerClient int            // open connections from one address at most; 0: MaxConns
	IdleTimeout  time.Duration  // wait for the next packet; 0: Server.IdleTimeout
	FrameTimeout time.Duration  // rest of a packet once it started
}

// LimitsFromConfig reads the milter_* limits of cfg.
func LimitsFromConfig(cfg *config.Config) Limits {
	allow := cfg.Get("milter_allow").Nets
	if allow == nil {
		allow = []netip.Prefix{} // an empty list allows no TCP client
	}
	return Limits{
		Allow:        allow,
		MaxConns:     int(cfg.Int("milter_max_connections")),
		MaxPerClient: int(cfg.Int("milter_max_connections_per_client")),
		IdleTimeout:  cfg.Duration("milter_idle_timeout"),
		FrameTimeout: cfg.Duration("milter_frame_timeout"),
	}
}

// withDefaults fills in the zero fields.
func (l Limits) withDefaults(idle time.Duration) Limits {
	if l.Allow == nil {
		l.Allow = DefaultAllow
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxPerClient <= 0 || l.MaxPerClient > l.MaxConns {
		l.MaxPerClient = l.MaxConns
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = idle
	}
	if l.FrameTimeout <= 0 {
		l.FrameTimeout = DefaultFrameTimeout
	}
	return l
}

// clientAddr returns the IP address of a TCP client, and false for a
// unix-socket client.
func clientAddr(c net.Conn) (netip.Addr, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}

// allowedBy reports whether ip is in one of the prefixes.
func allowedBy(ip netip.Addr, allow []netip.Prefix) bool {
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit decides whether a new connection may be served and, if so, counts
// it. why is the reason for a refusal, for the log.
func (s *Server) admit(c net.Conn, lim Limits) (client netip.Addr, why string) {
	ip, isTCP := clientAddr(c)
	if isTCP && !allowedBy(ip, lim.Allow) {
		return ip, "client not in milter_allow"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open >= lim.MaxConns {
		return ip, "milter_max_connections reached"
	}
	if isTCP && s.perClient[ip] >= lim.MaxPerClient {
		return ip, "milter_max_connections_per_client reached"
	}
	s.open++
	if isTCP {
		if s.perClient == nil {
			s.perClient = map[netip.Addr]int{}
		}
		s.perClient[ip]++
	}
	return ip, ""
}

// leave uncounts a connection that admit counted.
func (s *Server) leave(client netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if client.IsValid() {
		if s.perClient[client]--; s.perClient[client] <= 0 {
			delete(s.perClient, client)
		}
	}
}

// refusal counts the connections refused for one reason since the last
// log line about them.
type refusal struct {
	count  int
	logged time.Time
}

// refused logs a refused connection, at most once a second for each
// reason, with the number refused since: a flood must not flood the log.
func (s *Server) refused(logger *slog.Logger, c net.Conn, why string) {
	s.mu.Lock()
	if s.refusals == nil {
		s.refusals = map[string]*refusal{}
	}
	r := s.refusals[why]
	if r == nil {
		r = &refusal{}
		s.refusals[why] = r
	}
	r.count++
	now := time.Now()
	if now.Sub(r.logged) < time.Second {
		s.mu.Unlock()
		return
	}
	n := r.count
	r.count, r.logged = 0, now
	s.mu.Unlock()
	logger.Warn("milter: connection refused", "reason", why, "client", c.RemoteAddr().String(), "refused_since_last_log", n)
}
