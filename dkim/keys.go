package dkim

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/resolver"
)

// keyCache runs each key query once per message and keeps the answer.
// The TXT answer itself is cached by the resolver; the key it holds is
// parsed once per record text by the core (dkimcore.ParseKeyRecordCached).
type keyCache struct {
	// ctx bounds the queries; End may replace it while no prefetch
	// worker runs (see Stream.EndContext).
	ctx     context.Context
	dns     resolver.Querier // nil: every key is temporarily unavailable
	mu      sync.Mutex
	entries map[string]*keyEntry
}

type keyEntry struct {
	done chan struct{} // closed when the answer is in
	txts []string
	err  error // a *net.DNSError, as resolver.TXTLookup gives it
}

func newKeyCache(ctx context.Context, dns resolver.Querier) *keyCache {
	return &keyCache{ctx: ctx, dns: dns, entries: map[string]*keyEntry{}}
}

// lookup queries the TXT records at name.
func (k *keyCache) lookup(name string) ([]string, error) {
	if k.dns == nil {
		return noResolver(name)
	}
	return resolver.TXTLookup(k.ctx, k.dns)(name)
}

// get returns the TXT records at name. Concurrent calls for one name
// share one query.
func (k *keyCache) get(name string) ([]string, error) {
	key := ascii.Lower(name)
	k.mu.Lock()
	e := k.entries[key]
	if e != nil {
		k.mu.Unlock()
		<-e.done
		return e.txts, e.err
	}
	e = &keyEntry{done: make(chan struct{})}
	k.entries[key] = e
	k.mu.Unlock()
	e.txts, e.err = k.lookup(name)
	close(e.done)
	return e.txts, e.err
}

// fetch queries the names, in parallel when there are several, and
// returns when every answer is in.
func (k *keyCache) fetch(names []string) {
	if len(names) == 1 {
		k.get(names[0])
		return
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { k.get(n) })
	}
	wg.Wait()
}

// prefetch runs the key queries of a message in a goroutine while its
// body streams in, so that DNS overlaps a long body.
type prefetch struct {
	done chan struct{}
}

func startPrefetch(k *keyCache, names []string) *prefetch {
	p := &prefetch{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		k.fetch(names)
	}()
	return p
}

func (p *prefetch) wait() { <-p.done }

// dnsErrorText says briefly what went wrong with a key query: the
// resolver's own words ("DNS timeout", "DNS SERVFAIL"), which
// resolver.TXTLookup puts last in the *net.DNSError.
func dnsErrorText(err error) string {
	var de *net.DNSError
	if !errors.As(err, &de) {
		return err.Error()
	}
	text := de.Err
	if i := strings.LastIndex(text, ": "); i >= 0 {
		text = text[i+2:]
	}
	if text == "" {
		text = "DNS failure"
	}
	return text
}

// isTemporary reports whether a key query failed for a transient reason.
func isTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsTemporary
}

// noResolver is the key lookup of a Verifier without DNS: every key is
// temporarily unavailable.
func noResolver(name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no DNS resolver configured", Name: name, IsTemporary: true}
}
