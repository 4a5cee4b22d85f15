package tlspolicy

import (
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// decisionStore holds the cached decisions, at most size of them, the
// least recently used evicted first (golang-lru: one short lock per read,
// which the policy socket's profile shows no contention on — 5.7 ms of
// waiting in all over 100,000 requests at 16 connections).
type decisionStore struct {
	c *lru.Cache[string, *entry]
}

func newDecisionStore(size int) *decisionStore {
	c, _ := lru.New[string, *entry](max(size, 1))
	return &decisionStore{c: c}
}

// get returns the entry of key, or nil.
func (s *decisionStore) get(key string) *entry {
	e, _ := s.c.Get(key)
	return e
}

// put stores e under e.key, replacing the entry there.
func (s *decisionStore) put(e *entry) { s.c.Add(e.key, e) }

// len returns the number of entries.
func (s *decisionStore) len() int { return s.c.Len() }

// purge removes every entry.
func (s *decisionStore) purge() { s.c.Purge() }

// entry is one cached decision and its timetable.
type entry struct {
	key string
	dec *made
	// refreshAt: from then on a hit starts a background refresh
	// (refresh-ahead); expires: the end of its life, the DNS TTLs with
	// the floor and the ceiling applied; staleUntil: how long after that
	// it may still answer while a refresh runs (== expires for the levels
	// that must not be served stale; see servesStale).
	refreshAt, expires, staleUntil int64 // Unix nanoseconds of the Decider's clock
	// retryAt: no refresh is started from this entry before then (one in
	// flight, or the last one failed: RFC 9520 §3.2).
	retryAt atomic.Int64
}

// made is a decision made from DNS, shared by the requests that waited
// for it and the cache entry that keeps it.
type made struct {
	d    *Decision
	told atomic.Bool // a request was answered with it (and logged it)
}

// first reports whether this is the first request answered with the
// decision: that one logs it at info, as decided from DNS.
func (m *made) first() bool {
	return !m.told.Load() && m.told.CompareAndSwap(false, true)
}
