package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

// TestPolicyCacheMetrics asks a policy server whose Env reports to the
// metrics, over tcp_table on loopback: a miss and two hits for a DANE
// next hop, a failing next hop (a miss, its failure cached, then a hit),
// and reads the cache's counters back from /metrics.
func TestPolicyCacheMetrics(t *testing.T) {
	zone := dnstest.NewZone().Add(
		"dane.example. 300 IN MX 10 mx.dane.example.",
		"mx.dane.example. 300 IN A 192.0.2.1",
		"_25._tcp.mx.dane.example. 300 IN TLSA 3 1 1 "+strings.Repeat("ab", 32),
		"fail.example. 300 IN MX 10 mx.dane.example.",
	)
	zone.SetSecure("", true)
	zone.SetFault("fail.example", resolver.TypeMX, dnstest.ServFail)
	m := metrics.New()
	env := tlspolicy.TestEnv(zone, nil)
	env.SetObserver(m)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := tlspolicy.NewServer(func() *tlspolicy.Env { return env })
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, tt := range []struct{ key, want string }{
		{"dane.example", "200 dane-only"}, {"dane.example", "200 dane-only"}, {"dane.example", "200 dane-only"},
		{"fail.example", "400 "}, {"fail.example", "400 "},
	} {
		fmt.Fprintf(c, "get %s\n", tt.key)
		if got, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(got, tt.want) {
			t.Fatalf("get %s: %q %v, want %q", tt.key, got, err, tt.want)
		}
	}
	expect(t, scrape(t, m.Handler()), []sample{
		{"sidecar_policy_cache_answers_total", []string{"result", "miss"}, 2},
		{"sidecar_policy_cache_answers_total", []string{"result", "hit"}, 3},
		{"sidecar_policy_cache_answers_total", []string{"result", "stale"}, 0},
		{"sidecar_policy_cache_answers_total", []string{"result", "wait"}, 0},
		{"sidecar_policy_cache_refreshes_total", nil, 0},
		{"sidecar_policy_cache_failures_total", nil, 1},
		{"sidecar_policy_answers_total", []string{"protocol", "tcp_table", "policy", "temp", "reason", "dns_failure"}, 2},
	})
}
