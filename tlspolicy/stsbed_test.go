//go:build linux

package tlspolicy

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestSTSTestbed: MTA-STS on the DNSSEC test bed — the TXT records from
// knot through the validating unbound, the policies from an HTTPS server
// with a private CA — through the policy socket as Postfix and Exim ask;
// then the same answers after a restart with the HTTPS server gone (the
// cache file), and never a downgrade while the DNS fails.
func TestSTSTestbed(t *testing.T) {
	tb := startTestbed(t)
	res, err := resolver.New(resolver.Options{Servers: []string{tb.resolverAddr}, Timeout: 700 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch r.Host {
		case "mta-sts.sts.example.test":
			io.WriteString(w, "version: STSv1\nmode: enforce\nmx: mx-notlsa.example.test\nmx: *.mx.example.test\nmax_age: 86400\n")
		case "mta-sts.ststest.example.test":
			io.WriteString(w, "version: STSv1\nmode: testing\nmx: mx-notlsa.example.test\nmax_age: 86400\n")
		case "mta-sts.example.test":
			io.WriteString(w, "version: STSv1\nmode: enforce\nmx: nothing.example.test\nmax_age: 86400\n")
		default:
			http.NotFound(w, r)
		}
	}))
	client := startPolicyHTTPS(t, ca, srv, "mta-sts.sts.example.test", "mta-sts.ststest.example.test", "mta-sts.example.test")
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "mta-sts.json")
	newEnv := func(q resolver.Querier) *Env {
		sts, err := NewSTS(&STSRules{Enabled: true, Options: mtasts.Options{HTTP: client, File: file}}, q)
		if err != nil {
			t.Fatal(err)
		}
		env := TestEnv(q, nil)
		env.Decider = NewDecider(q, DeciderOptions{STS: sts, LookupTimeout: 5 * time.Second})
		return env
	}
	env := newEnv(res)
	_, addr := startServer(t, env)
	expectReplies(t, addr, []reqReply{
		{ns("policy sts.example.test"), "OK secure match=mx-notlsa.example.test:.mx.example.test servername=hostname"},
		{"get sts.example.test\n", "200 secure%20match=mx-notlsa.example.test:.mx.example.test%20servername=hostname\n"},
		{"dane sts.example.test\n", "verify "},
		{"sts sts.example.test\n", "enforce mx-notlsa.example.test:*.mx.example.test\n"},
		{ns("policy ststest.example.test"), "NOTFOUND "},
		{"sts ststest.example.test\n", "testing "},
		{ns("policy example.test"), "OK dane-only"}, // DANE wins
		{ns("policy notlsa.example.test"), "NOTFOUND "},
		{ns("policy tampered.example.test"), "TEMP "},
	})
	d, _ := env.Decider.Decide(context.Background(), "sts.example.test")
	t.Logf("sts.example.test:\n%s", d.Explain())
	if !strings.Contains(d.Explain(), "mx-notlsa.example.test matches mx-notlsa.example.test") {
		t.Errorf("Explain:\n%s", d.Explain())
	}

	// A restart with the HTTPS server gone and the DNS failing: a
	// temporary failure (the MX lookup fails first), never "no policy".
	srv.Close()
	dead, _ := resolver.New(resolver.Options{Servers: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond, Attempts: 1})
	_, addr2 := startServer(t, newEnv(dead))
	if got := exchange(t, addr2, ns("policy sts.example.test")); !strings.HasPrefix(got, "TEMP ") {
		t.Errorf("after restart, DNS down: %q", got)
	}
	// The DNS back, HTTPS still down: the TXT ids are those of the cache
	// file, so its policies answer without a fetch.
	_, addr3 := startServer(t, newEnv(res))
	if got := exchange(t, addr3, ns("policy sts.example.test")); got != "OK secure match=mx-notlsa.example.test:.mx.example.test servername=hostname" {
		t.Errorf("after restart, HTTPS down: %q", got)
	}
	if got := exchange(t, addr3, "sts ststest.example.test\n"); !strings.HasPrefix(got, "testing ") {
		t.Errorf("after restart, HTTPS down, testing policy: %q", got)
	}
}

// startPolicyHTTPS starts srv with a certificate of ca for names and
// returns an MTA-STS HTTP client that reaches srv whatever host it asks.
func startPolicyHTTPS(t *testing.T, ca *testpki.CA, srv *httptest.Server, names ...string) *http.Client {
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, names...)}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	client := mtasts.NewHTTPClient(ca.Pool, 2*time.Second)
	client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	return client
}
