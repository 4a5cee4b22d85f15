package resolver_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// testTimeout is the per-attempt timeout of resolvers that talk to servers
// which answer; tests of timeouts use shortTimeout.
const (
	testTimeout  = time.Second
	shortTimeout = 100 * time.Millisecond
)

// newResolver returns a resolver for the servers with test defaults: one
// attempt, a one-second timeout, and a fake clock when opts.Now is nil.
func newResolver(t *testing.T, opts resolver.Options, servers ...string) *resolver.Resolver {
	t.Helper()
	if opts.Servers == nil {
		opts.Servers = servers
	}
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	if opts.Attempts == 0 {
		opts.Attempts = 1
	}
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	r, err := resolver.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// serve starts a loopback server for records.
func serve(t *testing.T, records ...string) (*dnstest.Zone, *dnstest.Server) {
	t.Helper()
	z := dnstest.NewZone().Add(records...)
	return z, dnstest.NewServer(t, z)
}

// deadAddr returns a loopback UDP address nobody listens on: queries to it
// fail with ICMP port unreachable.
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func query(t *testing.T, r resolver.Querier, name string, typ resolver.Type) *resolver.Answer {
	t.Helper()
	ans, err := r.Query(context.Background(), name, typ)
	if err != nil {
		t.Fatalf("Query(%s, %s): %v", name, typ, err)
	}
	return ans
}

func records(t *testing.T, texts ...string) []resolver.Record {
	t.Helper()
	var out []resolver.Record
	for _, s := range texts {
		rec, err := resolver.ParseRecord(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}
