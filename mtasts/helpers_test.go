package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// testCA is a private certificate authority of a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sidecar test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names.
func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

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
