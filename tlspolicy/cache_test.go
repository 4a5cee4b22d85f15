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

// gatedQuerier counts queries, holds them until the gate opens, and
// answers with the TTLs set by SetTTL instead of the zone's (TTL 0: what
// a resolver says in the last second of its copy).
type gatedQuerier struct {
	q    resolver.Querier
	n    atomic.Int64
	gate chan struct{}

	mu    sync.Mutex
	ttls  map[string]time.Duration
	byKey map[string]int // "name/TYPE" -> queries
}

func (g *gatedQuerier) Query(ctx context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	g.n.Add(1)
	key := resolver.NormalizeName(name) + "/" + t.String()
	g.mu.Lock()
	if g.byKey == nil {
		g.byKey = map[string]int{}
	}
	g.byKey[key]++
	ttl, override := g.ttls[resolver.NormalizeName(name)]
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, &resolver.QueryError{Name: name, Type: t, Kind: resolver.ErrTimeout, Err: ctx.Err()}
		}
	}
	ans, err := g.q.Query(ctx, name, t)
	if err == nil && override {
		ans.TTL = ttl
	}
	return ans, err
}

// SetTTL makes the answers for name carry ttl.
func (g *gatedQuerier) SetTTL(name string, ttl time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ttls == nil {
		g.ttls = map[string]time.Duration{}
	}
	g.ttls[resolver.NormalizeName(name)] = ttl
}

// Close holds the following queries until Open.
func (g *gatedQuerier) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
}

// Open lets the held queries and the following ones through.
func (g *gatedQuerier) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

// Resolutions counts the MX queries for name: one per decision made from
// DNS for that next hop.
func (g *gatedQuerier) Resolutions(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byKey[resolver.NormalizeName(name)+"/MX"]
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

// newCacheTest is a Decider on the test zone behind a gatedQuerier, with
// a fake clock.
func newCacheTest(opts DeciderOptions) (*Decider, *gatedQuerier, *fakeClock, *dnstest.Zone) {
	z := testZone()
	g := &gatedQuerier{q: z}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	opts.Now = clock.Now
	return NewDecider(g, opts), g, clock, z
}

// decide is Decide for a next hop known to parse.
func decide(t *testing.T, dc *Decider, nexthop string) *Decision {
	t.Helper()
	d, err := dc.Decide(context.Background(), nexthop)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor waits until cond holds, up to 10s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheSmallestTTL(t *testing.T) {
	dc, g, clock, _ := newCacheTest(DeciderOptions{})
	d1 := decide(t, dc, "dane.example.com")
	if d1.TTL != 120*time.Second {
		t.Fatalf("TTL %s, want the TLSA record's 2m", d1.TTL)
	}
	clock.Add(100 * time.Second) // before the refresh window (the last 12s)
	if d2 := decide(t, dc, "DANE.example.com."); d2 != d1 || g.Resolutions("dane.example.com") != 1 {
		t.Errorf("not answered from the cache within the TTL")
	}
	if s := dc.Stats(); s.Decisions != 1 || s.CacheHits != 1 || s.Misses != 1 || s.Refreshes != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCacheRefreshAhead(t *testing.T) {
	dc, g, clock, _ := newCacheTest(DeciderOptions{})
	d1 := decide(t, dc, "dane.example.com")
	clock.Add(110 * time.Second) // the last tenth of 2m
	g.Close()
	for range 10 {
		if d := decide(t, dc, "dane.example.com"); d != d1 {
			t.Fatal("a hit in the refresh window did not answer the cached decision")
		}
	}
	if s := dc.Stats(); s.Refreshes != 1 || s.CacheHits != 10 {
		t.Errorf("stats %+v: want one refresh for ten hits", s)
	}
	g.Open()
	dc.running.Wait()
	d2 := decide(t, dc, "dane.example.com")
	if d2 == d1 || d2.Level != LevelDANEOnly {
		t.Errorf("the refreshed decision did not replace the cached one")
	}
	if n := g.Resolutions("dane.example.com"); n != 2 {
		t.Errorf("%d resolutions, want 2", n)
	}
	// The refreshed decision lives its own TTL from the refresh.
	clock.Add(100 * time.Second)
	if d := decide(t, dc, "dane.example.com"); d != d2 || g.Resolutions("dane.example.com") != 2 {
		t.Errorf("the refreshed decision does not live its TTL")
	}
}

func TestCacheTTLZero(t *testing.T) {
	for _, tt := range []struct {
		name, nexthop, tlsaName string
		level                   Level
	}{
		{"dane-only", "dane.example.com", "_25._tcp.mx1.dane.example.com", LevelDANEOnly},
		{"none", "notlsa.example.com", "_25._tcp.plain.example.com", LevelNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dc, g, clock, _ := newCacheTest(DeciderOptions{StaleTTL: -1})
			g.SetTTL(tt.tlsaName, 0)
			g.Close()
			var wg sync.WaitGroup
			got := make([]*Decision, 8)
			for i := range got {
				wg.Add(1)
				go func() { defer wg.Done(); got[i] = decide(t, dc, tt.nexthop) }()
			}
			waitFor(t, "the askers to wait", func() bool { return dc.Stats().Shared == uint64(len(got)-1) })
			g.Open()
			wg.Wait()
			for _, d := range got {
				if d != got[0] || d.Level != tt.level || d.TTL != 0 {
					t.Fatalf("the askers of one TTL-0 decision got %v (TTL %s), want one %s decision", d.Level, d.TTL, tt.level)
				}
			}
			// Kept for the floor, 1s: its first half answers without DNS.
			clock.Add(400 * time.Millisecond)
			if d := decide(t, dc, tt.nexthop); d != got[0] {
				t.Errorf("a TTL-0 decision is not cached for the floor")
			}
			dc.running.Wait()
			if n := g.Resolutions(tt.nexthop); n != 1 {
				t.Errorf("%d resolutions within the floor, want 1", n)
			}
			// Past the floor it is decided again.
			clock.Add(700 * time.Millisecond)
			if d := decide(t, dc, tt.nexthop); d == got[0] {
				t.Errorf("a TTL-0 decision outlived the floor")
			}
			if n := g.Resolutions(tt.nexthop); n != 2 {
				t.Errorf("%d resolutions after the floor, want 2", n)
			}
		})
	}
	t.Run("no floor", func(t *testing.T) {
		dc, g, _, _ := newCacheTest(DeciderOptions{CacheMinTTL: -1})
		g.SetTTL("_25._tcp.mx1.dane.example.com", 0)
		decide(t, dc, "dane.example.com")
		decide(t, dc, "dane.example.com")
		if n := g.Resolutions("dane.example.com"); n != 2 {
			t.Errorf("%d resolutions without a floor, want 2 (TTL 0 is not cached)", n)
		}
	})
}

// TestCacheExpiryConcurrentAskers: when a decision expires, 64 requests
// at once cost one resolution, whether they wait for it (a level that is
// not served stale) or are answered stale while it runs (dane-only).
func TestCacheExpiryConcurrentAskers(t *testing.T) {
	for _, tt := range []struct {
		nexthop   string
		level     Level
		waitCount bool // the askers wait for the refresh
	}{
		{"notlsa.example.com", LevelNone, true},
		{"mixed.example.com", LevelDANE, true},
		{"unusable.example.com", LevelEncrypt, true},
		{"dane.example.com", LevelDANEOnly, false},
	} {
		t.Run(tt.level.String(), func(t *testing.T) {
			dc, g, clock, _ := newCacheTest(DeciderOptions{})
			d1 := decide(t, dc, tt.nexthop)
			if d1.Level != tt.level {
				t.Fatalf("level %s, want %s", d1.Level, tt.level)
			}
			clock.Add(d1.TTL + time.Millisecond) // expired; no hit in the refresh window
			g.Close()
			var wg sync.WaitGroup
			got := make([]*Decision, 64)
			for i := range got {
				wg.Add(1)
				go func() { defer wg.Done(); got[i] = decide(t, dc, tt.nexthop) }()
			}
			if tt.waitCount {
				waitFor(t, "63 askers to wait", func() bool { return dc.Stats().Shared == 63 })
				if s := dc.Stats(); s.Misses != 2 || s.Stale != 0 {
					t.Errorf("stats %+v: an expired %s was served", s, tt.level)
				}
			} else {
				wg.Wait() // answered stale while the refresh is held
				if s := dc.Stats(); s.Stale != 64 || s.Refreshes != 1 {
					t.Errorf("stats %+v, want 64 stale answers and one refresh", s)
				}
			}
			g.Open()
			wg.Wait()
			dc.running.Wait()
			for _, d := range got {
				if d != got[0] || d.Level != tt.level {
					t.Fatalf("the askers got different decisions")
				}
			}
			if tt.waitCount == (got[0] == d1) {
				t.Errorf("answered %v, want the expired decision only when served stale", got[0] == d1)
			}
			if n := g.Resolutions(tt.nexthop); n != 2 {
				t.Errorf("%d resolutions, want 2: one before and one after the expiry", n)
			}
		})
	}
}

// TestCacheFailingDomain: SERVFAIL on the MX lookup, asked 1,000 times at
// once and then 1,000 times over three seconds: the answer is always TEMP
// and the domain costs one resolution per FailureTTL.
func TestCacheFailingDomain(t *testing.T) {
	dc, g, clock, _ := newCacheTest(DeciderOptions{FailureTTL: time.Second})
	g.Close()
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := decide(t, dc, "mxfail.example.com"); d.Level != LevelTemp {
				t.Errorf("level %s, want temp", d.Level)
			}
		}()
	}
	waitFor(t, "999 askers to wait", func() bool { return dc.Stats().Shared == 999 })
	g.Open()
	wg.Wait()
	if n := g.Resolutions("mxfail.example.com"); n != 1 {
		t.Fatalf("%d resolutions for 1,000 concurrent requests, want 1", n)
	}
	for i := range 3000 {
		if i > 0 {
			clock.Add(time.Millisecond)
		}
		if d := decide(t, dc, "mxfail.example.com"); d.Level != LevelTemp {
			t.Fatalf("after %dms: level %s, want temp", i, d.Level)
		}
		dc.running.Wait()
	}
	// t=0 (the concurrent ones), then one per second: at 1s and 2s.
	if n := g.Resolutions("mxfail.example.com"); n != 3 {
		t.Errorf("%d resolutions in 3 seconds with a failure TTL of 1s, want 3", n)
	}
	if s := dc.Stats(); s.Failures != 3 || s.Decisions != 3 || s.Stale != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestCacheFailureRecovers: a cached failure answers for FailureTTL, then
// the next hop's recovery is picked up.
func TestCacheFailureRecovers(t *testing.T) {
	dc, _, clock, z := newCacheTest(DeciderOptions{StaleTTL: -1})
	if d := decide(t, dc, "mxfail.example.com"); d.Level != LevelTemp {
		t.Fatalf("level %s", d.Level)
	}
	z.SetFault("mxfail.example.com", resolver.TypeMX, dnstest.NoFault)
	clock.Add(4 * time.Second)
	if d := decide(t, dc, "mxfail.example.com"); d.Level != LevelTemp {
		t.Errorf("within the failure TTL: level %s, want the cached temp", d.Level)
	}
	clock.Add(time.Second)
	if d := decide(t, dc, "mxfail.example.com"); d.Level != LevelDANEOnly {
		t.Errorf("after the failure TTL: level %s, want dane-only", d.Level)
	}
}

// TestCacheStaleWhileRefresh: an expired dane-only answers at once while
// its refresh is held; the refresh then replaces it.
func TestCacheStaleWhileRefresh(t *testing.T) {
	dc, g, clock, _ := newCacheTest(DeciderOptions{StaleTTL: time.Minute})
	d1 := decide(t, dc, "dane.example.com")
	clock.Add(d1.TTL + 30*time.Second)
	g.Close()
	for range 3 {
		start := time.Now()
		if d := decide(t, dc, "dane.example.com"); d != d1 {
			t.Fatalf("the stale dane-only was not served")
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the stale answer took %s: it waited for the refresh", took)
		}
	}
	if s := dc.Stats(); s.Stale != 3 || s.Refreshes != 1 || s.Decisions != 2 {
		t.Errorf("stats %+v, want 3 stale answers, one refresh", s)
	}
	g.Open()
	dc.running.Wait()
	if d := decide(t, dc, "dane.example.com"); d == d1 || d.Level != LevelDANEOnly {
		t.Errorf("the refresh did not replace the stale decision")
	}
	// Beyond the stale window, a dane-only is not served any more.
	clock.Add(d1.TTL + time.Minute + time.Second)
	g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if d, _ := dc.Decide(ctx, "dane.example.com"); d.Level != LevelTemp {
		t.Errorf("beyond the stale window: %s, want the caller's timeout (it waits for DNS)", d.Level)
	}
	g.Open()
	dc.running.Wait()
}

// TestCacheTLSAAppears: a TLSA record published while "none" is cached
// from a NODATA answer is picked up at most the floor after the resolver
// stopped denying it (TTL 0: its last second), or when the NODATA's TTL
// ends.
func TestCacheTLSAAppears(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ttl     time.Duration // of the TLSA NODATA answer
		pickup  time.Duration // when dane-only must be answered
		noneTil time.Duration // until when none is still right
	}{
		{"NODATA with TTL 0", 0, time.Second, 0},
		{"NODATA with TTL 5s", 5 * time.Second, 5 * time.Second, 4 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dc, g, clock, z := newCacheTest(DeciderOptions{})
			g.SetTTL("_25._tcp.plain.example.com", tt.ttl)
			if d := decide(t, dc, "notlsa.example.com"); d.Level != LevelNone {
				t.Fatalf("level %s, want none", d.Level)
			}
			z.Add("_25._tcp.plain.example.com. 300 IN TLSA 3 1 1 " + sha256Hex)
			start := clock.Now()
			for step := 100 * time.Millisecond; clock.Now().Sub(start) < tt.pickup+time.Second; clock.Add(step) {
				at := clock.Now().Sub(start)
				d := decide(t, dc, "notlsa.example.com")
				dc.running.Wait()
				if at >= tt.pickup && d.Level != LevelDANEOnly {
					t.Fatalf("%s after the TLSA record appeared: %s, want dane-only", at, d.Level)
				}
				if at < tt.noneTil && d.Level != LevelNone {
					t.Errorf("%s: %s, want the cached none", at, d.Level)
				}
			}
		})
	}
}

// TestCacheRefreshFailureNeverDowngrades: DNS failures while refreshing
// a dane-only keep it in force (retried once per FailureTTL) until its
// stale window ends; then the answer is TEMP, never a weaker level.
func TestCacheRefreshFailureNeverDowngrades(t *testing.T) {
	dc, _, clock, z := newCacheTest(DeciderOptions{FailureTTL: 5 * time.Second, StaleTTL: time.Minute})
	d1 := decide(t, dc, "dane.example.com")
	z.SetFault("_25._tcp.mx1.dane.example.com", 0, dnstest.ServFail)
	// dane-only while fresh and stale (TTL 2m + 1m), then temp.
	for elapsed := time.Second; elapsed <= d1.TTL+2*time.Minute; elapsed += time.Second {
		clock.Add(time.Second)
		d := decide(t, dc, "dane.example.com")
		dc.running.Wait()
		want := LevelDANEOnly
		if elapsed >= d1.TTL+time.Minute {
			want = LevelTemp
		}
		switch {
		case d.Level != want:
			t.Fatalf("%s after the decision, refreshes failing: %s, want %s", elapsed, d.Level, want)
		case d.Level == LevelDANEOnly && d != d1:
			t.Fatalf("%s: a dane-only that is not the cached one", elapsed)
		}
	}
	// Refreshes from 108s (refresh window) to 180s (stale window end),
	// one per 5s, then the cached failure once per 5s.
	s := dc.Stats()
	if s.Refreshes < 14 || s.Refreshes > 30 || s.Failures != s.Decisions-1 {
		t.Errorf("stats %+v: want a failed refresh every 5s", s)
	}
}

func TestCacheMaxTTLAndSize(t *testing.T) {
	dc, _, clock, _ := newCacheTest(DeciderOptions{CacheMaxTTL: 10 * time.Second, CacheSize: 1, StaleTTL: -1})
	d1 := decide(t, dc, "dane.example.com")
	clock.Add(11 * time.Second)
	if d2 := decide(t, dc, "dane.example.com"); d2 == d1 {
		t.Errorf("cached beyond CacheMaxTTL")
	}
	decide(t, dc, "two.example.com") // evicts dane.example.com
	if n := dc.cache.len(); n != 1 {
		t.Errorf("cache holds %d decisions, want 1", n)
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
	waitFor(t, "the askers to wait", func() bool { return dc.Stats().Shared == uint64(len(results)-1) })
	g.Open()
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
	g.Open() // the shared lookup finishes for the cache
	dc.running.Wait()
	if d, _ := dc.Decide(context.Background(), "dane.example.com"); d.Level != LevelDANEOnly {
		t.Errorf("level %s", d.Level)
	}
	if s := dc.Stats(); s.Decisions != 1 || s.Failures != 0 {
		t.Errorf("stats %+v: the caller's timeout is not a failure to cache", s)
	}
}
