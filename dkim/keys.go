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
// A keyCache is part of a Stream's pooled scratch state (reset per
// message).
type keyCache struct {
	// ctx bounds the queries; End may replace it while no prefetch
	// worker runs (see Stream.EndContext).
	ctx     context.Context
	dns     resolver.Querier // nil: every key is temporarily unavailable
	mu      sync.Mutex
	entries []keyEntry
	index   map[string]int // entries by lower-case name, once there are many
}

type keyEntry struct {
	name string            // lower case
	recs []resolver.Record // TXT records, read-only (the resolver's)
	err  error             // a *net.DNSError, as resolver.LookupTXTRecords gives it
}

// indexedKeys is the entry count past which a map finds them.
const indexedKeys = 16

// reset empties the cache for a message whose queries run under ctx.
func (k *keyCache) reset(ctx context.Context, dns resolver.Querier) {
	clear(k.entries)
	k.entries = k.entries[:0]
	k.index = nil
	k.ctx, k.dns = ctx, dns
}

// lookup queries the TXT records at name.
func (k *keyCache) lookup(name string) ([]resolver.Record, error) {
	if k.dns == nil {
		return noResolver(name)
	}
	return resolver.LookupTXTRecords(k.ctx, k.dns, name)
}

// find returns the entry of a lower-case name, or -1.
func (k *keyCache) find(key string) int {
	if k.index != nil {
		if i, ok := k.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range k.entries {
		if k.entries[i].name == key {
			return i
		}
	}
	return -1
}

// get returns the TXT records at name, querying them unless an earlier
// call for the name (whatever its case) did. The calls that run at the
// same time (fetch) are for distinct names.
func (k *keyCache) get(name string) ([]resolver.Record, error) {
	key := ascii.Lower(name)
	k.mu.Lock()
	if i := k.find(key); i >= 0 {
		e := k.entries[i]
		k.mu.Unlock()
		return e.recs, e.err
	}
	k.mu.Unlock()
	recs, err := k.lookup(name)
	k.mu.Lock()
	defer k.mu.Unlock()
	if i := k.find(key); i >= 0 { // a query for the same name in another case
		return k.entries[i].recs, k.entries[i].err
	}
	k.entries = append(k.entries, keyEntry{name: key, recs: recs, err: err})
	if len(k.entries) > indexedKeys {
		if k.index == nil {
			k.index = make(map[string]int, 2*indexedKeys)
			for i := range k.entries[:len(k.entries)-1] {
				k.index[k.entries[i].name] = i
			}
		}
		k.index[key] = len(k.entries) - 1
	}
	return recs, err
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
func noResolver(name string) ([]resolver.Record, error) {
	return nil, &net.DNSError{Err: "no DNS resolver configured", Name: name, IsTemporary: true}
}
