package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// policyServer is an HTTPS server for mta-sts.* names: each domain's
// handler answers its policy URL; hits counts the requests.
type policyServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	h    map[string]http.HandlerFunc // by Host
	hits atomic.Int64
}

func newPolicyServer(t testing.TB, cert tls.Certificate) *policyServer {
	ps := &policyServer{h: map[string]http.HandlerFunc{}}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.hits.Add(1)
		ps.mu.Lock()
		h := ps.h[r.Host]
		ps.mu.Unlock()
		if h == nil || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *policyServer) set(domain string, h http.HandlerFunc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.h["mta-sts."+domain] = h
}

// serve answers body as text/plain.
func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(body))
	}
}

// client is the client of NewHTTPClient trusting roots, with every
// connection sent to the test server whatever the name.
func (ps *policyServer) client(roots *x509.CertPool, timeout time.Duration) *http.Client {
	c := NewHTTPClient(roots, timeout)
	addr := ps.srv.Listener.Addr().String()
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return c
}

// txtDNS answers TXT lookups from a map, or with an error.
type txtDNS struct {
	mu      sync.Mutex
	records map[string][]string
	err     map[string]error
}

func (d *txtDNS) set(name string, txts ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.records == nil {
		d.records = map[string][]string{}
	}
	d.records[name] = txts
	delete(d.err, name)
}

func (d *txtDNS) fail(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = map[string]error{}
	}
	d.err[name] = err
}

func (d *txtDNS) Query(ctx context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.err[name]; err != nil {
		return nil, err
	}
	txts, ok := d.records[name]
	if !ok {
		return &resolver.Answer{Rcode: resolver.RcodeNXDomain, TTL: 30 * time.Second}, nil
	}
	ans := &resolver.Answer{TTL: 60 * time.Second}
	for _, s := range txts {
		ans.Records = append(ans.Records, resolver.Record{Type: resolver.TypeTXT, TXT: []string{s}})
	}
	return ans, nil
}
