package tlspolicy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/mailsidecar/sidecar/resolver"
)

// Defaults of DeciderOptions.
const (
	DefaultCacheSize     = 10000
	DefaultCacheMaxTTL   = time.Hour
	DefaultLookupTimeout = 10 * time.Second
)

// DeciderOptions configure a Decider.
type DeciderOptions struct {
	Rules *Rules
	// CacheSize bounds the number of cached decisions (default 10000);
	// negative disables the cache.
	CacheSize int
	// CacheMaxTTL caps how long a decision is cached (default 1h).
	CacheMaxTTL time.Duration
	// LookupTimeout bounds the DNS work of one decision (default 10s).
	LookupTimeout time.Duration
	// Now is the cache's clock (default time.Now).
	Now func() time.Time
	// STS is the MTA-STS side; nil leaves it out.
	STS *STS
}

// Decider decides policies for next hops and caches the decisions for the
// smallest TTL of the DNS answers they used (capped by CacheMaxTTL).
// Temporary failures are never cached. Identical decisions in progress are
// shared. It is safe for concurrent use.
type Decider struct {
	eng     engine
	cache   *lru.Cache[string, cached] // nil when disabled
	maxTTL  time.Duration
	timeout time.Duration
	now     func() time.Time

	mu      sync.Mutex
	flights map[string]*decision

	lookups, hits, shared atomic.Uint64
}

type cached struct {
	d       *Decision
	expires time.Time
}

type decision struct {
	done chan struct{}
	d    *Decision
}

// DeciderStats count a Decider's work.
type DeciderStats struct {
	Decisions uint64 // decisions computed from DNS
	CacheHits uint64 // answered from the cache
	Shared    uint64 // waited for an identical decision in progress
}

// NewDecider returns a Decider asking q.
func NewDecider(q resolver.Querier, opts DeciderOptions) *Decider {
	if opts.Rules == nil {
		opts.Rules = DefaultRules()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.CacheMaxTTL <= 0 {
		opts.CacheMaxTTL = DefaultCacheMaxTTL
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = DefaultLookupTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Decider{
		eng:     engine{q: q, rules: opts.Rules, sts: opts.STS},
		maxTTL:  opts.CacheMaxTTL,
		timeout: opts.LookupTimeout,
		now:     opts.Now,
		flights: map[string]*decision{},
	}
	if opts.CacheSize > 0 {
		d.cache, _ = lru.New[string, cached](opts.CacheSize)
	}
	return d
}

// DefaultRules are the rules of the default configuration: DANE tried for
// every destination, OCSP requested from every host.
func DefaultRules() *Rules {
	return &Rules{
		DANEDomains:        MustList("*", false),
		RequestOCSP:        MustList("*", true),
		RequestOCSPDefault: true,
	}
}

// Rules returns the rules the Decider applies.
func (dc *Decider) Rules() *Rules { return dc.eng.rules }

// Stats returns the Decider's counters.
func (dc *Decider) Stats() DeciderStats {
	return DeciderStats{Decisions: dc.lookups.Load(), CacheHits: dc.hits.Load(), Shared: dc.shared.Load()}
}

// Decide returns the decision for a next hop ("example.com",
// "[mx.example.com]:587", …). The error is non-nil only for a next hop
// that cannot be parsed (ErrBadNextHop); DNS failures are decisions with
// LevelTemp. When ctx ends first, the decision is LevelTemp too, and the
// shared lookup goes on for the callers still waiting and the cache.
func (dc *Decider) Decide(ctx context.Context, nexthop string) (*Decision, error) {
	h, err := ParseNextHop(nexthop)
	if err != nil {
		return nil, err
	}
	return dc.DecideNextHop(ctx, h), nil
}

// DecideNextHop is Decide for a parsed next hop.
func (dc *Decider) DecideNextHop(ctx context.Context, h NextHop) *Decision {
	key := h.String()
	if d := dc.cached(key); d != nil {
		return d
	}
	return dc.decideMiss(ctx, key, h)
}

// cached returns the cached decision for a next hop key, or nil.
func (dc *Decider) cached(key string) *Decision {
	if dc.cache == nil {
		return nil
	}
	c, ok := dc.cache.Get(key)
	if !ok {
		return nil
	}
	if !dc.now().Before(c.expires) {
		dc.cache.Remove(key)
		return nil
	}
	dc.hits.Add(1)
	return c.d
}

// decideMiss decides a next hop that is not in the cache, sharing the
// work with identical decisions in progress.
func (dc *Decider) decideMiss(ctx context.Context, key string, h NextHop) *Decision {
	dc.mu.Lock()
	f, ok := dc.flights[key]
	if ok {
		dc.shared.Add(1)
	} else {
		f = &decision{done: make(chan struct{})}
		dc.flights[key] = f
		go dc.run(key, h, f)
	}
	dc.mu.Unlock()
	select {
	case <-f.done:
		return f.d
	case <-ctx.Done():
		d := &Decision{NextHop: h, Level: LevelTemp, Err: ctx.Err(), OCSP: OCSPRequest,
			Reason: "the decision took too long: " + failure(ctx.Err()) + "; deferring, never downgrading"}
		return d
	}
}

// run computes a decision on its own deadline, so that a caller that gives
// up does not fail the others.
func (dc *Decider) run(key string, h NextHop, f *decision) {
	ctx, cancel := context.WithTimeout(context.Background(), dc.timeout)
	defer cancel()
	dc.lookups.Add(1)
	d := dc.eng.decide(ctx, h)
	if d.Level != LevelTemp && dc.cache != nil {
		ttl := min(d.TTL, dc.maxTTL)
		if (!d.MXLookup && len(d.Hosts) == 0 || d.NextHop.IP.IsValid()) && d.STS == nil {
			ttl = dc.maxTTL // decided from configuration alone
		}
		if ttl > 0 {
			dc.cache.Add(key, cached{d: d, expires: dc.now().Add(ttl)})
		}
	}
	f.d = d
	dc.mu.Lock()
	delete(dc.flights, key)
	dc.mu.Unlock()
	close(f.done)
}

// Purge empties the cache.
func (dc *Decider) Purge() {
	if dc.cache != nil {
		dc.cache.Purge()
	}
}
