package tlspolicy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// gatedQuerier counts queries and holds them until the gate opens.
type gatedQuerier struct {
	q    resolver.Querier
	n    atomic.Int64
	gate chan struct{}
}

func (g *gatedQuerier) Query(ctx context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	g.n.Add(1)
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, &resolver.QueryError{Name: name, Type: t, Kind: resolver.ErrTimeout, Err: ctx.Err()}
		}
	}
	return g.q.Query(ctx, name, t)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCacheSmallestTTL(t *testing.T) {
	g := &gatedQuerier{q: testZone()}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	dc := NewDecider(g, DeciderOptions{Now: clock.Now})
	ctx := context.Background()
	d1, _ := dc.Decide(ctx, "dane.example.com")
	if d1.TTL != 120*time.Second {
		t.Fatalf("TTL %s, want the TLSA record's 2m", d1.TTL)
	}
	n := g.n.Load()
	clock.Add(119 * time.Second)
	if d2, _ := dc.Decide(ctx, "DANE.example.com."); d2 != d1 || g.n.Load() != n {
		t.Errorf("not answered from the cache within the TTL")
	}
	clock.Add(2 * time.Second)
	if d3, _ := dc.Decide(ctx, "dane.example.com"); d3 == d1 || g.n.Load() == n {
		t.Errorf("answered from the cache after the TTL")
	}
	if s := dc.Stats(); s.Decisions != 2 || s.CacheHits != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestCacheMaxTTLAndSize(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	dc := NewDecider(testZone(), DeciderOptions{Now: clock.Now, CacheMaxTTL: 10 * time.Second, CacheSize: 1})
	ctx := context.Background()
	d1, _ := dc.Decide(ctx, "dane.example.com")
	clock.Add(11 * time.Second)
	if d2, _ := dc.Decide(ctx, "dane.example.com"); d2 == d1 {
		t.Errorf("cached beyond CacheMaxTTL")
	}
	dc.Decide(ctx, "two.example.com") // evicts dane.example.com
	if dc.cache.Len() != 1 {
		t.Errorf("cache holds %d decisions, want 1", dc.cache.Len())
	}
}

func TestTemporaryFailuresNotCached(t *testing.T) {
	z := testZone()
	dc := NewDecider(z, DeciderOptions{})
	ctx := context.Background()
	if d, _ := dc.Decide(ctx, "mxfail.example.com"); d.Level != LevelTemp {
		t.Fatalf("level %s", d.Level)
	}
	z.SetFault("mxfail.example.com", resolver.TypeMX, dnstest.NoFault)
	if d, _ := dc.Decide(ctx, "mxfail.example.com"); d.Level != LevelDANEOnly {
		t.Errorf("after recovery: level %s, want dane-only (a TEMP was cached?)", d.Level)
	}
}

func TestConcurrentDecisionsShared(t *testing.T) {
	g := &gatedQuerier{q: testZone(), gate: make(chan struct{})}
	dc := NewDecider(g, DeciderOptions{})
	var wg sync.WaitGroup
	results := make([]*Decision, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = dc.Decide(context.Background(), "dane.example.com")
		}()
	}
	for dc.Stats().Shared < uint64(len(results)-1) {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	wg.Wait()
	for _, d := range results {
		if d != results[0] || d.Level != LevelDANEOnly {
			t.Fatalf("decisions differ or wrong: %v", d.Level)
		}
	}
	if s := dc.Stats(); s.Decisions != 1 {
		t.Errorf("%d decisions computed, want 1", s.Decisions)
	}
	if n := g.n.Load(); n != 4 { // MX, A, AAAA, TLSA
		t.Errorf("%d queries, want 4", n)
	}
}

func TestCallerDeadline(t *testing.T) {
	g := &gatedQuerier{q: testZone(), gate: make(chan struct{})}
	dc := NewDecider(g, DeciderOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d, _ := dc.Decide(ctx, "dane.example.com")
	if d.Level != LevelTemp {
		t.Errorf("level %s, want temp", d.Level)
	}
	close(g.gate) // the shared lookup finishes for the cache
	for dc.Stats().Decisions == 0 || dc.cache.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	if d, _ := dc.Decide(context.Background(), "dane.example.com"); d.Level != LevelDANEOnly {
		t.Errorf("level %s", d.Level)
	}
}
