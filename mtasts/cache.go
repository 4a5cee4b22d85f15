package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/internal/atomicfile"
	"github.com/mailsidecar/sidecar/resolver"
)

// Defaults of Options.
const (
	DefaultMaxEntries = 10000
	// MaxRefreshInterval: a cached policy is fetched again after half its
	// max_age, and at least this often (RFC 8461 §5.1 asks senders to
	// refresh before expiry).
	MaxRefreshInterval = 24 * time.Hour
	// maxCacheFile bounds the cache file read at start.
	maxCacheFile = 64 << 20
)

// Options configure a Cache.
type Options struct {
	// DNS answers the _mta-sts TXT lookups.
	DNS resolver.Querier
	// HTTP fetches policies; NewHTTPClient(nil, 0) when nil.
	HTTP *http.Client
	// File keeps the policies across restarts; empty keeps them in memory.
	File string
	// MaxEntries bounds the policies kept (default 10000); when full, the
	// one that expires first gives way.
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Source says where a Result's policy comes from.
type Source string

// Sources.
const (
	SourceNone    Source = "none"    // no policy
	SourceFetched Source = "fetched" // fetched now
	SourceCache   Source = "cache"   // the cached policy, id unchanged
	// SourceKept: a cached policy kept because the TXT lookup or the
	// fetch of a new policy failed (RFC 8461 §5.1).
	SourceKept Source = "kept"
)

func (s Source) String() string { return string(s) }

// Result is the policy for a domain and how it was found.
type Result struct {
	Domain  string
	Policy  *Policy // nil when the domain has no policy
	ID      string  // the id of Policy
	Fetched time.Time
	Expires time.Time
	Source  Source
	Reason  string
	// FetchErr is the permanent failure to fetch the policy a TXT record
	// announced (nil otherwise): Reason without a policy says why.
	FetchErr error
	// TTL is the TXT answer's TTL: how long the result may be reused
	// without asking again (0 when unknown).
	TTL time.Duration
}

// Entry is one cached policy.
type Entry struct {
	Domain  string
	ID      string
	Policy  *Policy
	Fetched time.Time
	// tried is when a refresh was last started: a failing server is
	// asked again only after RetryInterval.
	tried time.Time
}

// RetryInterval separates the refresh attempts of one policy.
const RetryInterval = 5 * time.Minute

// Expires is when the policy stops applying: its fetch time plus max_age.
func (e *Entry) Expires() time.Time { return e.Fetched.Add(e.Policy.MaxAge) }

// RefreshDue is when a background refresh should fetch the policy again.
func (e *Entry) RefreshDue() time.Time {
	return e.Fetched.Add(min(e.Policy.MaxAge/2, MaxRefreshInterval))
}

// Cache discovers, fetches and caches MTA-STS policies. It is safe for
// concurrent use.
type Cache struct {
	dns  resolver.Querier
	http *http.Client
	file string
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*Entry
	flights map[string]*flight

	saveMu sync.Mutex
}

type flight struct {
	done chan struct{}
	res  Result
	err  error
}

// New returns a Cache holding the policies of opts.File that have not
// expired. A file that cannot be read or parsed gives an error, and an
// empty cache that works all the same.
func New(opts Options) (*Cache, error) {
	if opts.HTTP == nil {
		opts.HTTP = NewHTTPClient(nil, 0)
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cache{dns: opts.DNS, http: opts.HTTP, file: opts.File, max: opts.MaxEntries, now: opts.Now,
		entries: map[string]*Entry{}, flights: map[string]*flight{}}
	if c.file == "" {
		return c, nil
	}
	return c, c.load()
}

// fileEntry is an Entry in the cache file: the policy as text, parsed
// again on load like any other input.
type fileEntry struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
	Policy  string    `json:"policy"`
}

type cacheFile struct {
	Version int         `json:"version"`
	Entries []fileEntry `json:"entries"`
}

func (c *Cache) load() error {
	f, err := os.Open(c.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxCacheFile {
		return fmt.Errorf("%s: larger than %d octets; starting empty", c.file, maxCacheFile)
	}
	var cf cacheFile
	if err := json.Unmarshal(data, &cf); err != nil {
		return fmt.Errorf("%s: %v; starting empty", c.file, err)
	}
	if cf.Version != 1 {
		return fmt.Errorf("%s: version %d, want 1; starting empty", c.file, cf.Version)
	}
	now := c.now()
	var bad int
	for _, fe := range cf.Entries {
		p, err := ParsePolicy([]byte(fe.Policy))
		if err != nil || checkDomain(fe.Domain) != nil || fe.ID == "" {
			bad++
			continue
		}
		e := &Entry{Domain: fe.Domain, ID: fe.ID, Policy: p, Fetched: fe.Fetched}
		if !now.Before(e.Expires()) || len(c.entries) >= c.max {
			continue
		}
		c.entries[e.Domain] = e
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d invalid entries skipped", c.file, bad)
	}
	return nil
}

// save writes the cache file atomically (a new file renamed over the old).
func (c *Cache) save() error {
	if c.file == "" {
		return nil
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	cf := cacheFile{Version: 1, Entries: make([]fileEntry, 0, len(c.entries))}
	for _, e := range c.entries {
		cf.Entries = append(cf.Entries, fileEntry{Domain: e.Domain, ID: e.ID, Fetched: e.Fetched.UTC(), Policy: e.Policy.String()})
	}
	c.mu.Unlock()
	sort.Slice(cf.Entries, func(i, j int) bool { return cf.Entries[i].Domain < cf.Entries[j].Domain })
	data, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.file, ".mta-sts-cache-*", append(data, '\n'))
}

// Entries returns the cached policies, sorted by domain.
func (c *Cache) Entries() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Entry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// valid returns the unexpired cached policy of domain, or nil.
func (c *Cache) valid(domain string) *Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[domain]
	if e == nil || !c.now().Before(e.Expires()) {
		return nil
	}
	return e
}

func (e *Entry) result(src Source, reason string) Result {
	return Result{Domain: e.Domain, Policy: e.Policy, ID: e.ID, Fetched: e.Fetched, Expires: e.Expires(), Source: src, Reason: reason}
}

// Lookup returns the policy of a recipient domain (RFC 8461 §3, §5.1):
//
//   - the TXT record's id is that of the cached policy: the cached policy;
//   - a new id, or nothing cached: the policy is fetched; if that fails,
//     the cached policy is kept until it expires;
//   - no valid TXT record: the cached policy until it expires, or none;
//   - the TXT lookup fails: the cached policy, or an error wrapping
//     ErrTemporary — never "no policy";
//   - nothing cached and the fetch fails: a temporary failure (network,
//     timeout, HTTP 5xx) is an error wrapping ErrTemporary; any other
//     (bad certificate, redirect, status, media type, size, syntax) is no
//     policy, as RFC 8461 §3.3 says, with the reason in Result.Reason.
func (c *Cache) Lookup(ctx context.Context, domain string) (Result, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if err := checkDomain(domain); err != nil {
		return Result{Domain: domain, Source: SourceNone, Reason: "not a domain: " + err.Error()}, nil
	}
	cached := c.valid(domain)
	ans, err := c.dns.Query(ctx, RecordName(domain), resolver.TypeTXT)
	if err != nil {
		if cached != nil {
			return cached.result(SourceKept, fmt.Sprintf("TXT lookup for %s failed (%v): the cached policy is kept", RecordName(domain), err)), nil
		}
		return Result{Domain: domain}, fmt.Errorf("%w: TXT lookup for %s: %w", ErrTemporary, RecordName(domain), err)
	}
	var txts []string
	for _, rec := range ans.Records {
		txts = append(txts, strings.Join(rec.TXT, ""))
	}
	rec, err := SelectRecord(txts)
	if err != nil {
		if cached != nil {
			r := cached.result(SourceKept, fmt.Sprintf("%v at %s: the cached policy applies until it expires", err, RecordName(domain)))
			r.TTL = ans.TTL
			return r, nil
		}
		return Result{Domain: domain, Source: SourceNone, Reason: err.Error(), TTL: ans.TTL}, nil
	}
	if cached != nil && cached.ID == rec.ID {
		if c.startRefresh(cached) {
			go c.refresh(domain, rec.ID) // a failure keeps the policy
		}
		r := cached.result(SourceCache, "policy id "+rec.ID+" unchanged")
		r.TTL = ans.TTL
		return r, nil
	}
	r, err := c.fetch(ctx, domain, rec.ID)
	r.TTL = ans.TTL
	if err == nil {
		return r, nil
	}
	if cached != nil {
		r := cached.result(SourceKept, fmt.Sprintf("policy id %s announced, but %v: the cached policy (id %s) is kept", rec.ID, err, cached.ID))
		r.TTL = ans.TTL
		return r, nil
	}
	if errors.Is(err, ErrTemporary) {
		return Result{Domain: domain}, err
	}
	return Result{Domain: domain, Source: SourceNone, Reason: err.Error(), FetchErr: err, TTL: ans.TTL}, nil
}

// fetch gets domain's policy and caches it under id, sharing the work
// with identical fetches in progress.
func (c *Cache) fetch(ctx context.Context, domain, id string) (Result, error) {
	c.mu.Lock()
	f, ok := c.flights[domain]
	if !ok {
		f = &flight{done: make(chan struct{})}
		c.flights[domain] = f
		go func() {
			// Its own deadline: a caller that gives up does not fail the
			// others, nor the cache.
			f.res, f.err = c.fetchNow(context.WithoutCancel(ctx), domain, id)
			c.mu.Lock()
			delete(c.flights, domain)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return Result{Domain: domain}, fmt.Errorf("%w: %w: %v", ErrFetch, ErrTemporary, ctx.Err())
	}
}

func (c *Cache) fetchNow(ctx context.Context, domain, id string) (Result, error) {
	p, _, err := Fetch(ctx, c.http, domain)
	if err != nil {
		return Result{Domain: domain}, err
	}
	e := &Entry{Domain: domain, ID: id, Policy: p, Fetched: c.now()}
	c.store(e)
	return e.result(SourceFetched, "policy id "+id+" fetched"), nil
}

// store caches e (an expired policy, max_age 0, is only removed) and
// writes the file.
func (c *Cache) store(e *Entry) {
	c.mu.Lock()
	if e.Policy.MaxAge <= 0 {
		delete(c.entries, e.Domain)
	} else {
		if _, ok := c.entries[e.Domain]; !ok && len(c.entries) >= c.max {
			c.evictLocked()
		}
		c.entries[e.Domain] = e
	}
	c.mu.Unlock()
	c.save() // best effort: the memory copy is what applies
}

// evictLocked removes the entry that expires first.
func (c *Cache) evictLocked() {
	var first *Entry
	for _, e := range c.entries {
		if first == nil || e.Expires().Before(first.Expires()) {
			first = e
		}
	}
	if first != nil {
		delete(c.entries, first.Domain)
	}
}

// startRefresh reports whether a refresh of e is due and not tried in the
// last RetryInterval, and marks it tried.
func (c *Cache) startRefresh(e *Entry) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(e.RefreshDue()) || now.Sub(e.tried) < RetryInterval {
		return false
	}
	e.tried = now
	return true
}

// refresh fetches a cached policy again; a failure keeps the cached
// policy (RFC 8461 §5.1).
func (c *Cache) refresh(domain, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultFetchTimeout)
	defer cancel()
	_, err := c.fetch(ctx, domain, id)
	return err
}

// Refresh fetches again every cached policy due for it (half its max_age
// passed, or MaxRefreshInterval), first asking the TXT record for the id
// in force. It drops expired policies, and returns how many policies were
// refreshed and the failures (the cached policies stay).
func (c *Cache) Refresh(ctx context.Context) (int, []error) {
	now := c.now()
	var due []Entry
	c.mu.Lock()
	removed := false
	for d, e := range c.entries {
		switch {
		case !now.Before(e.Expires()):
			delete(c.entries, d)
			removed = true
		case !now.Before(e.RefreshDue()) && now.Sub(e.tried) >= RetryInterval:
			e.tried = now
			due = append(due, *e)
		}
	}
	c.mu.Unlock()
	if removed {
		c.save()
	}
	var n int
	var errs []error
	for _, e := range due {
		id := e.ID
		if ans, err := c.dns.Query(ctx, RecordName(e.Domain), resolver.TypeTXT); err == nil {
			var txts []string
			for _, rec := range ans.Records {
				txts = append(txts, strings.Join(rec.TXT, ""))
			}
			if rec, err := SelectRecord(txts); err == nil {
				id = rec.ID
			}
		}
		if _, err := c.fetch(ctx, e.Domain, id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (cached policy id %s kept)", e.Domain, err, e.ID))
			continue
		}
		n++
	}
	return n, errs
}

// Run refreshes the cache at once (the policies of the cache file may be
// due after a restart) and then every interval until ctx ends, passing the
// failures to report (which may be nil).
func (c *Cache) Run(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, errs := c.Refresh(ctx)
		if report != nil && ctx.Err() == nil {
			for _, err := range errs {
				report(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
