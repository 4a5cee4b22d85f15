// Package parsecache remembers what a parser made of a DNS record's text:
// the resolver caches the TXT answer, a Cache the work of parsing it, so a
// record (a DKIM key, an SPF or DMARC policy) is parsed once per answer
// however many messages use it. The text alone must determine the result,
// so callers share the parsed value and must treat it as read-only. An
// LRU bounds the entries, and texts longer than a limit are parsed each
// time rather than fill the cache.
package parsecache

import lru "github.com/hashicorp/golang-lru/v2"

// Cache maps record texts to their parse.
type Cache[T any] struct {
	parse   func(string) (T, error)
	maxText int
	lru     *lru.Cache[string, entry[T]]
}

type entry[T any] struct {
	v   T
	err error
}

// New returns a cache of at most size parses of texts of at most maxText
// bytes.
func New[T any](size, maxText int, parse func(string) (T, error)) *Cache[T] {
	c, err := lru.New[string, entry[T]](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return &Cache[T]{parse: parse, maxText: maxText, lru: c}
}

// Parse returns parse(txt), from the cache when txt was parsed before:
// the value and the error are those of the first parse, shared.
func (c *Cache[T]) Parse(txt string) (T, error) {
	if e, ok := c.lru.Get(txt); ok {
		return e.v, e.err
	}
	v, err := c.parse(txt)
	if len(txt) <= c.maxText {
		c.lru.Add(txt, entry[T]{v, err})
	}
	return v, err
}
