package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// health is what /healthz and /readyz answer from.
type health struct {
	mu       sync.Mutex
	up       string                          // why the daemon is not healthy; "" when it is
	started  bool                            // SetUp was called
	probe    func(ctx context.Context) error // asks the DNS servers, bypassing the cache
	interval time.Duration                   // metrics_ready_interval
	probing  chan struct{}                   // closed when the probe in flight ends; nil when none
	probeErr error
}

// SetUp records that the daemon is healthy (why == ""): its configuration
// loaded and its listeners bound; or why it is not.
func (m *Metrics) SetUp(why string) {
	m.health.mu.Lock()
	m.health.up, m.health.started = why, true
	m.health.mu.Unlock()
}

// SetDNSProbe sets how /readyz asks the DNS when no server answered within
// interval (resolver.Resolver.Probe of the configuration in force).
func (m *Metrics) SetDNSProbe(probe func(ctx context.Context) error, interval time.Duration) {
	m.health.mu.Lock()
	m.health.probe, m.health.interval = probe, interval
	m.health.mu.Unlock()
}

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		m.health.mu.Lock()
		why, started := m.health.up, m.health.started
		m.health.mu.Unlock()
		if !started {
			why = "starting: listeners not bound yet"
		}
		answer(w, why)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		answer(w, m.ready(r.Context()))
	})
	return mux
}

func answer(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, why)
		return
	}
	fmt.Fprintln(w, "ok")
}

// maxProbe bounds the DNS probe of /readyz.
const maxProbe = 5 * time.Second

// ready returns "" when a DNS server answered within the interval, or
// when one answers a probe now; otherwise why DNS is not reachable.
// Concurrent requests share one probe.
func (m *Metrics) ready(ctx context.Context) string {
	h := &m.health
	h.mu.Lock()
	interval, probe := h.interval, h.probe
	if interval <= 0 {
		interval = time.Minute
	}
	if last := m.lastDNSOK.Load(); last != 0 && time.Since(time.Unix(0, last)) <= interval {
		h.mu.Unlock()
		return ""
	}
	if probe == nil {
		h.mu.Unlock()
		return "no DNS server answered within " + interval.String()
	}
	wait := h.probing
	if wait == nil {
		wait = make(chan struct{})
		h.probing = wait
		go func() {
			pctx, cancel := context.WithTimeout(context.Background(), min(interval, maxProbe))
			defer cancel()
			err := probe(pctx)
			if err == nil {
				m.lastDNSOK.Store(time.Now().UnixNano())
			}
			h.mu.Lock()
			h.probeErr, h.probing = err, nil
			h.mu.Unlock()
			close(wait)
		}()
	}
	h.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return "DNS probe still running"
	}
	h.mu.Lock()
	err := h.probeErr
	h.mu.Unlock()
	if err != nil && m.lastDNSOK.Load() == 0 || err != nil && time.Since(time.Unix(0, m.lastDNSOK.Load())) > interval {
		return "DNS not reachable: " + err.Error()
	}
	return ""
}

// Server serves the Handler on metrics_listen listeners, disconnecting
// clients outside the allow-list at once.
type Server struct {
	srv *http.Server
}

// NewServer returns a server of h for clients in allow (nil: none but
// loopback is not implied; an empty list admits nobody over TCP).
func NewServer(h http.Handler) *Server {
	return &Server{srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}}
}

// Serve serves l until Shutdown, admitting only TCP clients in allow.
func (s *Server) Serve(l net.Listener, allow []netip.Prefix) error {
	err := s.srv.Serve(&allowListener{Listener: l, allow: allow})
	if errors.Is(err, http.ErrServerClosed) {
		return net.ErrClosed
	}
	return err
}

// Shutdown stops the server, letting requests in progress finish until ctx
// is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// allowListener drops connections from clients outside allow.
type allowListener struct {
	net.Listener
	allow []netip.Prefix
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if Allowed(c.RemoteAddr(), l.allow) {
			return c, nil
		}
		c.Close()
	}
}

// Allowed reports whether a TCP client's address is in allow.
func Allowed(a net.Addr, allow []netip.Prefix) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
