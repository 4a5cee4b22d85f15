package tlspolicy

import (
	"strconv"
	"sync"
	"testing"
)

func storeEntry(key string) *entry {
	return &entry{key: key, dec: &made{d: &Decision{Reason: key}}}
}

func TestDecisionStoreLeastRecentlyUsed(t *testing.T) {
	s := newDecisionStore(3)
	for _, k := range []string{"a", "b", "c"} {
		s.put(storeEntry(k))
	}
	s.get("a") // read: no longer the least recently used
	s.put(storeEntry("d"))
	if s.get("b") != nil {
		t.Error("b, the oldest entry not read, was not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if s.get(k) == nil {
			t.Errorf("%s evicted", k)
		}
	}
	// Replacing an entry keeps the size.
	s.put(storeEntry("c"))
	if n := s.len(); n != 3 {
		t.Errorf("%d entries after a replacement, want 3", n)
	}
	s.purge()
	if n := s.len(); n != 0 || s.get("a") != nil {
		t.Errorf("%d entries after purge", n)
	}
}

// TestDecisionStoreConcurrent: readers and writers of overlapping keys
// (run with -race); the store never holds more than its size, and every
// key it answers for is its own entry.
func TestDecisionStoreConcurrent(t *testing.T) {
	const size = 16
	s := newDecisionStore(size)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := strconv.Itoa((i*7 + w) % 40)
				if e := s.get(k); e != nil && e.key != k {
					t.Errorf("get(%s) gave the entry of %s", k, e.key)
					return
				}
				if i%3 == 0 {
					s.put(storeEntry(k))
				}
			}
		}()
	}
	wg.Wait()
	if n := s.len(); n > size {
		t.Errorf("%d entries, size %d", n, size)
	}
	for _, k := range s.c.Keys() {
		if e := s.get(k); e == nil || e.key != k {
			t.Errorf("%s holds %v", k, e)
		}
	}
}

// BenchmarkDecisionCacheHit is the cache's read path alone, from every
// CPU at once, all for the same next hop (the worst case for a lock).
//
//	go test -run '^$' -bench DecisionCacheHit -cpu 1,2 ./tlspolicy/
func BenchmarkDecisionCacheHit(b *testing.B) {
	dc := NewDecider(testZone(), DeciderOptions{})
	h, _ := ParseNextHop("dane.example.com")
	dc.DecideNextHop(b.Context(), h)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if dc.lookup(b.Context(), h, 0).result != EventHit {
				b.Fatal("not a hit")
			}
		}
	})
}
