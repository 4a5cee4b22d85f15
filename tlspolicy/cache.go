package tlspolicy

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// Defaults of DeciderOptions.
const (
	DefaultCacheSize     = 10000
	DefaultCacheMaxTTL   = time.Hour
	DefaultCacheMinTTL   = time.Second
	DefaultFailureTTL    = 5 * time.Second
	DefaultStaleTTL      = time.Hour
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
	// CacheMinTTL is the floor of a decision's cache lifetime (default
	// 1s; negative: none): a decision from answers with TTL 0 answers
	// the requests that waited for it and is kept this long.
	CacheMinTTL time.Duration
	// FailureTTL is how long a failed decision (LevelTemp) is cached
	// (default 5s; negative: not at all).
	FailureTTL time.Duration
	// StaleTTL is how long after its expiry a decision that may be served
	// stale (servesStale) still answers while it is refreshed (default
	// 1h; negative: never).
	StaleTTL time.Duration
	// LookupTimeout bounds the DNS work of one decision (default 10s).
	LookupTimeout time.Duration
	// Now is the cache's clock (default time.Now).
	Now func() time.Time
	// STS is the MTA-STS side; nil leaves it out.
	STS *STS
}

// Decider decides policies for next hops and caches the decisions (see
// lookup for the rules). One decision per next hop is in flight at a
// time: concurrent requests for it wait for that one. It is safe for
// concurrent use.
type Decider struct {
	eng      engine
	cache    *decisionStore // nil when disabled
	maxTTL   time.Duration
	minTTL   time.Duration // 0: no floor
	failTTL  time.Duration // 0: failures not cached
	staleTTL time.Duration // 0: nothing served stale
	timeout  time.Duration
	now      func() time.Time
	obs      Observer // nil: none; set before the first request (Env.SetObserver)

	mu      sync.Mutex
	flights map[string]*flight
	running sync.WaitGroup // flights in progress (tests wait for refreshes)

	decisions, hits, staleHits, misses, shared, refreshes, failures atomic.Uint64
}

// flight is a decision in progress.
type flight struct {
	done chan struct{}
	dec  *made // set before done is closed
}

// DeciderStats count a Decider's work since it was made.
type DeciderStats struct {
	Decisions uint64 // decisions computed from DNS, for requests and refreshes
	CacheHits uint64 // requests answered from a cached decision (cached failures included)
	Stale     uint64 // requests answered from an expired decision while it was refreshed
	Misses    uint64 // requests that found nothing usable and started a decision
	Shared    uint64 // requests that waited for a decision in flight (in-flight waits)
	Refreshes uint64 // decisions started in the background by a request answered from the cache
	Failures  uint64 // failed decisions (LevelTemp): cached, or retried later behind a decision still in force
}

// CacheEvent is what a Decider did: how it answered a request (EventHit,
// EventStale, EventMiss, EventWait), or background work (EventRefresh,
// EventFailure). Its Observer hears of each.
type CacheEvent uint8

// Cache events.
const (
	EventHit       CacheEvent = iota // a request answered from the cache
	EventStale                       // a request answered with a stale decision
	EventMiss                        // a request that started a decision
	EventWait                        // a request that waited for a decision in flight
	EventRefresh                     // a background refresh started
	EventFailure                     // a failed decision cached or retried later
	NumCacheEvents                   // the number of events
)

var cacheEventNames = [...]string{EventHit: "hit", EventStale: "stale", EventMiss: "miss", EventWait: "wait",
	EventRefresh: "refresh", EventFailure: "failure"}

func (e CacheEvent) String() string {
	if int(e) < len(cacheEventNames) {
		return cacheEventNames[e]
	}
	return "event" + strconv.Itoa(int(e))
}

// NewDecider returns a Decider asking q.
func NewDecider(q resolver.Querier, opts DeciderOptions) *Decider {
	if opts.Rules == nil {
		opts.Rules = DefaultRules()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = DefaultLookupTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Decider{
		eng:      engine{q: q, rules: opts.Rules, sts: opts.STS},
		maxTTL:   orDefault(opts.CacheMaxTTL, DefaultCacheMaxTTL),
		minTTL:   orDefault(opts.CacheMinTTL, DefaultCacheMinTTL),
		failTTL:  orDefault(opts.FailureTTL, DefaultFailureTTL),
		staleTTL: orDefault(opts.StaleTTL, DefaultStaleTTL),
		timeout:  opts.LookupTimeout,
		now:      opts.Now,
		flights:  map[string]*flight{},
	}
	d.minTTL = min(d.minTTL, d.maxTTL)
	if opts.CacheSize > 0 {
		d.cache = newDecisionStore(opts.CacheSize)
	}
	return d
}

// orDefault is v, def when v is 0, and 0 when v is negative (off).
func orDefault(v, def time.Duration) time.Duration {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
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
	return DeciderStats{
		Decisions: dc.decisions.Load(), CacheHits: dc.hits.Load(), Stale: dc.staleHits.Load(),
		Misses: dc.misses.Load(), Shared: dc.shared.Load(), Refreshes: dc.refreshes.Load(), Failures: dc.failures.Load(),
	}
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
	return dc.lookup(ctx, h, 0).d
}

// answer is a Decider's answer to one request.
type answer struct {
	d      *Decision
	result CacheEvent
	first  bool // the first request answered with this decision: it logs the decision
}

// lookup answers a request for h from the cache when it may, else waits
// for the decision in flight for h, starting one if there is none; wait,
// when positive, bounds that wait.
//
// A cached decision answers within its lifetime: the smallest TTL of the
// DNS answers it used, at least CacheMinTTL (the floor: answers with
// TTL 0 are counted down to 0 by the resolver in their last second) and at
// most CacheMaxTTL; a failure, CacheFailureTTL (RFC 2308 §7, RFC 9520
// §3.2). In the last tenth of that lifetime (at least a second, at most
// half of it) a request answered from the cache starts one background
// refresh (refresh-ahead). Past its expiry, a decision that servesStale
// still answers, up to StaleTTL, while its refresh runs (RFC 8767 §4);
// any other decision is not used, and the request waits for the refresh.
func (dc *Decider) lookup(ctx context.Context, h NextHop, wait time.Duration) answer {
	key := h.String()
	if dc.cache != nil {
		if e := dc.cache.get(key); e != nil {
			if a, ok := dc.fromEntry(e, h, dc.now().UnixNano()); ok {
				return a
			}
		}
	}
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	return dc.await(ctx, key, h)
}

// fromEntry answers from a cache entry at now, starting its refresh when
// it is due; false when the entry may not answer.
func (dc *Decider) fromEntry(e *entry, h NextHop, now int64) (answer, bool) {
	a := answer{d: e.dec.d, result: EventHit}
	switch {
	case now < e.refreshAt:
	case now < e.expires:
		dc.refresh(e, h, now)
	case now < e.staleUntil:
		dc.refresh(e, h, now)
		a.result = EventStale
	default:
		return answer{}, false
	}
	a.first = e.dec.first()
	if a.result == EventStale {
		dc.count(&dc.staleHits, EventStale)
	} else {
		dc.count(&dc.hits, EventHit)
	}
	return a, true
}

// count adds one to a counter and tells the observer.
func (dc *Decider) count(c *atomic.Uint64, ev CacheEvent) {
	c.Add(1)
	if dc.obs != nil {
		dc.obs.PolicyCache(ev)
	}
}

// refresh starts a background decision for the next hop of e unless one
// is in flight or the last one failed less than FailureTTL ago.
func (dc *Decider) refresh(e *entry, h NextHop, now int64) {
	next := e.retryAt.Load()
	if now < next || !e.retryAt.CompareAndSwap(next, now+int64(dc.timeout)) {
		return
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if _, ok := dc.flights[e.key]; ok {
		return
	}
	dc.count(&dc.refreshes, EventRefresh)
	dc.start(e.key, h)
}

// await waits for the decision in flight for key, starting one if there
// is none.
func (dc *Decider) await(ctx context.Context, key string, h NextHop) answer {
	result := EventWait
	dc.mu.Lock()
	f, ok := dc.flights[key]
	if ok {
		dc.count(&dc.shared, EventWait)
	} else {
		result = EventMiss
		dc.count(&dc.misses, EventMiss)
		f = dc.start(key, h)
	}
	dc.mu.Unlock()
	select {
	case <-f.done:
		return answer{d: f.dec.d, result: result, first: f.dec.first()}
	case <-ctx.Done():
		d := &Decision{NextHop: h, Level: LevelTemp, Err: ctx.Err(), OCSP: OCSPRequest,
			Reason: "the decision took too long: " + failure(ctx.Err()) + "; deferring, never downgrading"}
		return answer{d: d, result: result, first: true} // this request's own
	}
}

// start starts the decision for key on its own deadline, so that a caller
// that gives up does not fail the others. dc.mu is held.
func (dc *Decider) start(key string, h NextHop) *flight {
	f := &flight{done: make(chan struct{})}
	dc.flights[key] = f
	dc.running.Add(1)
	dc.decisions.Add(1)
	go func() {
		defer dc.running.Done()
		ctx, cancel := context.WithTimeout(context.Background(), dc.timeout)
		defer cancel()
		f.dec = dc.keep(key, dc.eng.decide(ctx, h))
		dc.mu.Lock()
		delete(dc.flights, key)
		dc.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Purge empties the cache.
func (dc *Decider) Purge() {
	if dc.cache != nil {
		dc.cache.purge()
	}
}
