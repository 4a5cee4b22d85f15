package tlspolicy

import (
	"sync"
	"sync/atomic"
)

// decisionStore holds the cached decisions, at most size of them. Reads
// take no lock (sync.Map's Load): every policy request reads, many
// connections at once, often for the same next hop, while writes happen
// once per decision made from DNS. Eviction is CLOCK (second chance): a
// read marks the entry used; when the store is full, the hand passes over
// the ring of entries, clearing marks, and evicts the first entry not
// used since the hand last passed, which approximates least recently used
// without a write per read.
type decisionStore struct {
	m sync.Map // next-hop key -> *entry

	mu   sync.Mutex // guards ring and hand; taken by writers only
	ring []*entry   // entry i has slot i; nil: a free slot
	hand int
	size int
}

func newDecisionStore(size int) *decisionStore {
	return &decisionStore{size: size, ring: make([]*entry, 0, min(size, 1024))}
}

// get returns the entry of key, or nil.
func (s *decisionStore) get(key string) *entry {
	v, ok := s.m.Load(key)
	if !ok {
		return nil
	}
	e := v.(*entry)
	if !e.used.Load() { // a shared read when already set: no cache-line write
		e.used.Store(true)
	}
	return e
}

// put stores e under e.key, replacing the entry there.
func (s *decisionStore) put(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m.Swap(e.key, e); ok {
		old := v.(*entry)
		e.slot = old.slot
		s.ring[e.slot] = e
		return
	}
	e.slot = s.freeSlot()
	s.ring[e.slot] = e
}

// freeSlot returns a ring slot for a new entry, evicting one when the
// store is full. s.mu is held.
func (s *decisionStore) freeSlot() int {
	if len(s.ring) < s.size {
		s.ring = append(s.ring, nil)
		return len(s.ring) - 1
	}
	for {
		i := s.hand
		s.hand = (s.hand + 1) % len(s.ring)
		switch v := s.ring[i]; {
		case v == nil:
			return i
		case v.used.Load():
			v.used.Store(false)
		default:
			s.m.CompareAndDelete(v.key, v)
			s.ring[i] = nil
			return i
		}
	}
}

// len returns the number of entries.
func (s *decisionStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.ring {
		if e != nil {
			n++
		}
	}
	return n
}

// purge removes every entry.
func (s *decisionStore) purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.Clear()
	clear(s.ring)
	s.ring = s.ring[:0]
	s.hand = 0
}

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
	used    atomic.Bool // read since the CLOCK hand last passed
	slot    int         // in decisionStore.ring; guarded by its mu
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
