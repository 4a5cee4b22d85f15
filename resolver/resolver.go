package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Defaults of Options.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultAttempts  = 2
	DefaultCacheSize = 10000
	DefaultMaxTTL    = 24 * time.Hour
	// ResolvConf is where New finds servers when Options.Servers is empty.
	ResolvConf = "/etc/resolv.conf"
)

// resolvConfPath is ResolvConf; tests point it elsewhere.
var resolvConfPath = ResolvConf

// DefaultTrustAD is the set of server addresses whose AD bit is believed
// when Options.TrustAD is nil: the loopback addresses, where a validating
// resolver on the same host answers over a path nobody else can tamper with
// (RFC 6698 §1.3, RFC 7672 §1.3).
var DefaultTrustAD = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// Options configure a Resolver. The zero value is usable: servers from
// /etc/resolv.conf and the defaults below.
type Options struct {
	// Servers are recursive resolvers as "ip", "ip:port" or "[ipv6]:port"
	// (port 53 by default), tried in order. Empty means the nameserver
	// lines of /etc/resolv.conf.
	Servers []string
	// TrustAD lists the server addresses whose AD bit makes an answer
	// Secure. nil means DefaultTrustAD; an empty, non-nil slice trusts no
	// server.
	TrustAD []netip.Prefix
	// Timeout bounds each attempt to reach one server (default 2s). A
	// deadline of the caller's context bounds it further.
	Timeout time.Duration
	// Attempts is the number of rounds over all servers (default 2).
	Attempts int
	// CacheSize is the number of answers cached (default 10000); negative
	// disables the cache.
	CacheSize int
	// MaxTTL caps how long an answer is cached (default 24h).
	MaxTTL time.Duration
	// Now is the clock of the cache (default time.Now).
	Now func() time.Time
	// Observer, when set, hears of every lookup and every exchange with a
	// server (the daemon's metrics).
	Observer Observer
}

// Observer hears of a Resolver's work. Its methods run on the lookup
// path: they must return quickly and never block.
type Observer interface {
	// Lookup: a Query call was answered from the cache (cached) or not.
	Lookup(t Type, cached bool)
	// Exchange: one exchange with a server ended, with the reply's rcode
	// or the error (a *QueryError) after took.
	Exchange(t Type, rcode Rcode, err error, took time.Duration)
}

// Stats are counters of a Resolver's activity since New.
type Stats struct {
	Queries     uint64 // queries sent to servers, over UDP or TCP
	CacheHits   uint64 // Query calls answered from the cache
	CacheMisses uint64 // Query calls not answered from the cache
	Shared      uint64 // cache misses that waited for an identical query in flight
	Errors      uint64 // Query calls that returned an error
}

// Resolver is a caching DNS stub resolver. It is safe for concurrent use.
type Resolver struct {
	servers  []server
	timeout  time.Duration
	attempts int
	maxTTL   time.Duration
	now      func() time.Time
	cache    *lru.Cache[cacheKey, *cacheEntry] // nil when disabled

	mu      sync.Mutex
	flights map[cacheKey]*flight

	queries, hits, misses, shared, errs atomic.Uint64
	obs                                 Observer // nil: none
}

var _ Querier = (*Resolver)(nil)

type server struct {
	addr    string // host:port
	trusted bool   // believe its AD bit
}

type cacheKey struct {
	name string
	t    Type
}

type cacheEntry struct {
	ans     Answer // TTL is the full TTL; Query replaces it by what remains
	expires time.Time
}

// flight is a lookup in progress that identical lookups wait for.
type flight struct {
	done    chan struct{} // closed when ans and err are set
	ans     *Answer
	err     error
	waiters int // callers waiting; guarded by Resolver.mu
	cancel  context.CancelFunc
}

// New returns a Resolver configured by opts. It fails when a server
// address is not an IP address with an optional port. When Servers is
// empty and /etc/resolv.conf is missing or names no server, it asks
// 127.0.0.1:53, as the C library's resolver does.
func New(opts Options) (*Resolver, error) {
	addrs := opts.Servers
	if len(addrs) == 0 {
		var err error
		if addrs, err = ServersFromResolvConf(resolvConfPath); err != nil || len(addrs) == 0 {
			addrs = []string{"127.0.0.1:53"}
		}
	}
	trust := opts.TrustAD
	if trust == nil {
		trust = DefaultTrustAD
	}
	r := &Resolver{
		timeout:  opts.Timeout,
		attempts: opts.Attempts,
		maxTTL:   opts.MaxTTL,
		now:      opts.Now,
		flights:  map[cacheKey]*flight{},
		obs:      opts.Observer,
	}
	for _, a := range addrs {
		ap, err := parseServer(a)
		if err != nil {
			return nil, err
		}
		trusted := false
		for _, p := range trust {
			if p.Contains(ap.Addr()) {
				trusted = true
				break
			}
		}
		r.servers = append(r.servers, server{addr: ap.String(), trusted: trusted})
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.attempts <= 0 {
		r.attempts = DefaultAttempts
	}
	if r.maxTTL <= 0 {
		r.maxTTL = DefaultMaxTTL
	}
	if r.now == nil {
		r.now = time.Now
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		c, err := lru.New[cacheKey, *cacheEntry](size)
		if err != nil {
			return nil, fmt.Errorf("resolver: cache: %w", err)
		}
		r.cache = c
	}
	return r, nil
}

// parseServer parses "ip", "ip:port" or "[ipv6]:port".
func parseServer(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolver: DNS server %q: not an IP address or IP address and port", s)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolver: DNS server %q: %q is not an IP address", s, host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolver: DNS server %q: bad port %q", s, port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(n)), nil
}

// Servers returns the servers the resolver queries, as host:port.
func (r *Resolver) Servers() []string {
	out := make([]string, len(r.servers))
	for i, s := range r.servers {
		out[i] = s.addr
	}
	return out
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	return Stats{
		Queries:     r.queries.Load(),
		CacheHits:   r.hits.Load(),
		CacheMisses: r.misses.Load(),
		Shared:      r.shared.Load(),
		Errors:      r.errs.Load(),
	}
}

// Purge empties the cache.
func (r *Resolver) Purge() {
	if r.cache != nil {
		r.cache.Purge()
	}
}

// Query looks up the records of type t at name, following CNAMEs.
//
// NXDOMAIN and NODATA are answers, not errors. A failed lookup returns a
// *QueryError that wraps ErrTemporary and one of ErrTimeout, ErrServFail,
// ErrRefused or ErrTransport; an invalid name returns an error wrapping
// ErrBadName. When ctx is done before the answer arrives, Query returns at
// once with an ErrTimeout QueryError that also wraps ctx.Err(). A cached
// answer is returned even when ctx is done.
//
// Answers come from the cache while their TTL lasts, and identical
// lookups running at the same time share one query.
func (r *Resolver) Query(ctx context.Context, name string, t Type) (*Answer, error) {
	qname := NormalizeName(name)
	if err := checkName(qname); err != nil {
		r.errs.Add(1)
		return nil, err
	}
	k := cacheKey{qname, t}
	if a := r.cached(k); a != nil {
		r.hits.Add(1)
		if r.obs != nil {
			r.obs.Lookup(t, true)
		}
		return a, nil
	}
	r.misses.Add(1)
	if r.obs != nil {
		r.obs.Lookup(t, false)
	}
	if err := ctx.Err(); err != nil {
		r.errs.Add(1)
		return nil, &QueryError{Name: qname, Type: t, Kind: ErrTimeout, Err: err}
	}

	r.mu.Lock()
	f, ok := r.flights[k]
	if ok {
		f.waiters++
		r.mu.Unlock()
		r.shared.Add(1)
	} else {
		// The query runs on its own context so that it survives the
		// caller that started it as long as someone waits for it.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
		r.flights[k] = f
		r.mu.Unlock()
		go r.fly(fctx, k, f)
	}

	select {
	case <-f.done:
		if f.err != nil {
			r.errs.Add(1)
		}
		return f.ans, f.err
	case <-ctx.Done():
		r.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants the answer any more.
			f.cancel()
			if r.flights[k] == f {
				delete(r.flights, k)
			}
		}
		r.mu.Unlock()
		r.errs.Add(1)
		return nil, &QueryError{Name: qname, Type: t, Kind: ErrTimeout, Err: ctx.Err()}
	}
}

// cached returns a copy of the cached answer for k with its remaining TTL,
// or nil.
func (r *Resolver) cached(k cacheKey) *Answer {
	if r.cache == nil {
		return nil
	}
	e, ok := r.cache.Get(k)
	if !ok {
		return nil
	}
	left := e.expires.Sub(r.now())
	if left <= 0 {
		r.cache.Remove(k)
		return nil
	}
	a := new(Answer)
	*a = e.ans
	a.TTL = left
	return a
}

// fly runs the lookup of a flight, caches its answer and wakes the waiters.
func (r *Resolver) fly(ctx context.Context, k cacheKey, f *flight) {
	ans, err := r.resolve(ctx, k.name, k.t)
	if err == nil && ans.TTL > 0 && r.cache != nil {
		r.cache.Add(k, &cacheEntry{ans: *ans, expires: r.now().Add(ans.TTL)})
	}
	r.mu.Lock()
	if r.flights[k] == f {
		delete(r.flights, k)
	}
	r.mu.Unlock()
	f.ans, f.err = ans, err
	f.cancel()
	close(f.done)
}

// resolve queries the servers for qname and chases the CNAME chain when a
// reply leaves it incomplete.
func (r *Resolver) resolve(ctx context.Context, qname string, t Type) (*Answer, error) {
	rep, srv, err := r.exchangeAll(ctx, qname, t)
	if err != nil {
		return nil, err
	}
	ans := rep.ans
	ttl := rep.ttl
	secure := rep.ad && srv.trusted
	for incomplete := rep.incomplete; incomplete; {
		last := rep.last()
		if len(ans.CNAME) >= maxCNAME {
			return nil, &QueryError{Name: qname, Type: t, Kind: ErrServFail, Err: errCNAMELong}
		}
		var sub *Answer
		var subTTL uint32
		var subSecure bool
		if c := r.cached(cacheKey{last, t}); c != nil {
			sub, subTTL, subSecure = c, uint32(min(c.TTL/time.Second, 1<<32-1)), c.Secure
			incomplete = false
		} else {
			rep, srv, err = r.exchangeAll(ctx, last, t)
			if err != nil {
				return nil, err // about the link that failed
			}
			sub, subTTL, subSecure = &rep.ans, rep.ttl, rep.ad && srv.trusted
			incomplete = rep.incomplete
		}
		for _, c := range sub.CNAME {
			if c == qname || contains(ans.CNAME, c) {
				return nil, &QueryError{Name: qname, Type: t, Kind: ErrServFail, Err: errCNAMELoop}
			}
			if len(ans.CNAME) == maxCNAME {
				return nil, &QueryError{Name: qname, Type: t, Kind: ErrServFail, Err: errCNAMELong}
			}
			ans.CNAME = append(ans.CNAME, c)
		}
		ans.Rcode, ans.Records = sub.Rcode, sub.Records
		ttl = min(ttl, subTTL)
		secure = secure && subSecure
	}
	ans.Secure = secure
	ans.TTL = min(time.Duration(ttl)*time.Second, r.maxTTL)
	return &ans, nil
}

// checkName validates a normalised name of octets: no empty label, labels
// of at most 63 octets and at most 253 octets in all (255 on the wire).
// Any octet may appear in a label (RFC 2181 §11): a space or a NUL is
// asked for as it is, escaped on the way to the wire.
func checkName(name string) error {
	if name == "." {
		return nil
	}
	if name == "" {
		return badName(name, "empty name")
	}
	if len(name) > 253 {
		return badName(name, "longer than 253 octets")
	}
	label := 0
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			label++
			if label > 63 {
				return badName(name, "label longer than 63 octets")
			}
			continue
		}
		if label == 0 {
			return badName(name, "empty label")
		}
		label = 0
	}
	if label == 0 {
		return badName(name, "empty label")
	}
	return nil
}

func badName(name, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadName, name, why)
}
