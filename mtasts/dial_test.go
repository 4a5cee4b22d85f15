package mtasts

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestDialVia: the policy host's address comes from sidecar's resolver
// (the zone), not the system's: the fetch goes to the address the zone
// gives, a host that does not exist is a permanent failure ("no policy"),
// a failing lookup a temporary one (defer). The port of every connection
// is moved from 443 to the test server's; the address is the zone's.
func TestDialVia(t *testing.T) {
	ca := testpki.NewCA(t)
	names := []string{"mta-sts.good.test", "mta-sts.elsewhere.test", "mta-sts.gone.test", "mta-sts.servfail.test", "mta-sts.v6only.test"}
	ps := newPolicyServer(t, ca.Leaf(t, names...))
	for _, d := range []string{"good.test", "elsewhere.test", "v6only.test"} {
		ps.set(d, serve(goodPolicy))
	}
	_, port, _ := net.SplitHostPort(ps.srv.Listener.Addr().String())
	zone := dnstest.NewZone().Add(
		"mta-sts.good.test. 300 IN A 127.0.0.1",
		// An address where the policy server does not listen: the fetch
		// must fail, proving the zone's address is the one dialled.
		"mta-sts.elsewhere.test. 300 IN A 127.0.0.3",
		"mta-sts.v6only.test. 300 IN AAAA ::1",
	).AddName("mta-sts.servfail.test").SetFault("mta-sts.servfail.test", 0, dnstest.ServFail)
	var dialled []string
	client := NewHTTPClient(ca.Pool, 2*time.Second)
	client.Transport.(*http.Transport).DialContext = DialVia(zone, func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, _ := net.SplitHostPort(addr)
		if p != "443" {
			t.Errorf("dial %s: want port 443", addr)
		}
		dialled = append(dialled, host)
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(host, port))
	})
	tests := []struct {
		domain string
		ok     bool
		temp   bool
		dial   []string
		reason string
	}{
		{"good.test", true, false, []string{"127.0.0.1"}, ""},
		{"elsewhere.test", false, true, []string{"127.0.0.3"}, "refused"},
		{"gone.test", false, false, nil, "no A or AAAA record"},
		{"servfail.test", false, true, nil, "SERVFAIL"},
		// AAAA used when there is no A record (the server listens on IPv4 only).
		{"v6only.test", false, true, []string{"::1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			dialled = nil
			zone.ResetQueries()
			p, _, err := Fetch(context.Background(), client, tt.domain)
			if tt.ok != (err == nil) || tt.ok && p.Mode != ModeEnforce {
				t.Fatalf("policy %v, error %v; want ok=%v", p, err, tt.ok)
			}
			if err != nil {
				if errors.Is(err, ErrTemporary) != tt.temp || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("error %v: want temporary=%v, containing %q", err, tt.temp, tt.reason)
				}
				t.Logf("%s: %v", tt.domain, err)
			}
			if !slices.Equal(dialled, tt.dial) {
				t.Errorf("dialled %v, want %v", dialled, tt.dial)
			}
			asked := false
			for _, q := range zone.Queries() {
				asked = asked || q.Name == "mta-sts."+tt.domain && q.Type == resolver.TypeA
			}
			if !asked {
				t.Errorf("the zone was not asked for mta-sts.%s A: %v", tt.domain, zone.Queries())
			}
		})
	}
}
