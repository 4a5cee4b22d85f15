// Package parsecache remembers what a parser made of a DNS record's text:
// the resolver caches the TXT answer, a Cache the work of parsing it, so a
// record (a DKIM key, an SPF or DMARC policy) is parsed once per answer
// however many messages use it. The text alone must determine the result,
// so callers share the parsed value and must treat it as read-only. An
// LRU bounds the entries, and texts longer than a limit are parsed each
// time rather than fill the cache.
package parsecache

import (
	"strings"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

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

// ParseParts is Parse of the text of parts joined (the character-strings
// of a TXT record), without joining them when the text was parsed before
// and is short.
func (c *Cache[T]) ParseParts(parts []string) (T, error) {
	if len(parts) == 1 {
		return c.Parse(parts[0])
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var stack [joinBuffer]byte
	if n > len(stack) || n > c.maxText {
		return c.Parse(strings.Join(parts, ""))
	}
	b := stack[:0]
	for _, p := range parts {
		b = append(b, p...)
	}
	// The lookup reads the key and keeps nothing of it.
	if e, ok := c.lru.Get(unsafe.String(unsafe.SliceData(b), len(b))); ok {
		return e.v, e.err
	}
	return c.Parse(string(b))
}

// joinBuffer is the longest text ParseParts joins on the stack: a 4096-bit
// DKIM key record has about 750 characters.
const joinBuffer = 1024
