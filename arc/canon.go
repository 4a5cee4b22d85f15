package arc

import (
	"hash"
)

// Header canonicalisation (RFC 6376 §3.4.1 and §3.4.2).

// canonHeader appends the canonical form of one header field to dst, with
// its final CRLF.
func canonHeader(dst []byte, f *field, relaxed bool) []byte {
	if !relaxed {
		return append(dst, f.raw...)
	}
	return relaxHeader(dst, f.lname, f.value())
}

// relaxHeader appends the relaxed form of a field: the name in lower case,
// a colon, the value unfolded with every run of WSP reduced to one SP and
// no WSP at either end, then CRLF.
func relaxHeader(dst []byte, lname, value string) []byte {
	dst = append(dst, lname...)
	dst = append(dst, ':')
	space, started := false, false
	for i := 0; i < len(value); {
		c := value[i]
		if c == ' ' || c == '\t' {
			space = true
			i++
			continue
		}
		if c == '\r' && i+1 < len(value) && value[i+1] == '\n' {
			i += 2 // unfold: a CRLF inside a field is always followed by WSP
			continue
		}
		// A run of other characters (a lone CR is one of them).
		j := i + 1
		for j < len(value) {
			if c := value[j]; c == ' ' || c == '\t' || c == '\r' {
				break
			}
			j++
		}
		if space && started {
			dst = append(dst, ' ')
		}
		space, started = false, true
		dst = append(dst, value[i:j]...)
		i = j
	}
	return append(dst, '\r', '\n')
}

// canonSigHeader appends the canonical form of a signature field (AMS or
// AS) with the value of its b= tag deleted, the FWS around that value
// included, and without the final CRLF: the form in which a signature
// covers itself (RFC 6376 §3.7, RFC 8617 §5.1.1). bStart and bEnd delimit
// the b= value span within the field value.
func canonSigHeader(dst []byte, f *field, bStart, bEnd int, relaxed bool) []byte {
	v := f.value()
	stripped := v[:bStart] + v[bEnd:]
	if relaxed {
		dst = relaxHeader(dst, f.lname, stripped)
	} else {
		dst = append(dst, f.raw[:f.colon+1]...)
		dst = append(dst, stripped...)
		dst = append(dst, '\r', '\n')
	}
	return dst[:len(dst)-2]
}

// Body canonicalisation (RFC 6376 §3.4.3 and §3.4.4), streaming.

// bodyKey identifies one body hash: its canonicalisation and length limit.
// Every ARC signature uses SHA-256.
type bodyKey struct {
	relaxed bool
	limit   int64 // l=, or -1 for the whole body
}

// bodyHasher canonicalises a body written in chunks of any size and hashes
// it. Memory is bounded: runs of empty lines and of whitespace are held as
// counts, never as bytes. Both CRLF and a bare LF end a line; a bare CR is
// an ordinary character.
type bodyHasher struct {
	key    bodyKey
	h      hash.Hash
	hashed int64 // canonical bytes given to h
	total  int64 // canonical bytes produced, hashed or not (for l=)
	crlfs  int64 // line ends held back: they are dropped if only empty lines follow
	wsp    bool  // relaxed: whitespace held back on the current line
	cr     bool  // a CR held back: it may start a CRLF
	any    bool  // any content produced
	done   bool
	buf    []byte
	sum    []byte
}

func newBodyHasher(key bodyKey, h hash.Hash) *bodyHasher {
	return &bodyHasher{key: key, h: h, buf: make([]byte, 0, 2048)}
}

func (b *bodyHasher) Write(p []byte) (int, error) {
	for _, c := range p {
		if b.cr {
			b.cr = false
			if c == '\n' {
				b.lineEnd()
				continue
			}
			b.content('\r')
		}
		switch c {
		case '\r':
			b.cr = true
		case '\n':
			b.lineEnd()
		case ' ', '\t':
			if b.key.relaxed {
				b.wsp = true
			} else {
				b.content(c)
			}
		default:
			b.content(c)
		}
	}
	return len(p), nil
}

func (b *bodyHasher) lineEnd() {
	b.wsp = false // relaxed: trailing whitespace is dropped
	b.crlfs++
}

func (b *bodyHasher) content(c byte) {
	for ; b.crlfs > 0; b.crlfs-- {
		b.emit('\r')
		b.emit('\n')
	}
	if b.wsp {
		b.wsp = false
		b.emit(' ')
	}
	b.any = true
	b.emit(c)
}

func (b *bodyHasher) emit(c byte) {
	b.total++
	if b.key.limit >= 0 && b.total > b.key.limit {
		return
	}
	b.buf = append(b.buf, c)
	if len(b.buf) == cap(b.buf) {
		b.flush()
	}
}

func (b *bodyHasher) flush() {
	b.h.Write(b.buf)
	b.hashed += int64(len(b.buf))
	b.buf = b.buf[:0]
}

// finish ends the body and returns the hash. A body ends with exactly one
// CRLF: trailing empty lines are dropped, a missing final CRLF is added.
// An empty body is CRLF in simple and empty in relaxed canonicalisation.
func (b *bodyHasher) finish() []byte {
	if b.done {
		return b.sum
	}
	b.done = true
	if b.cr {
		b.cr = false
		b.content('\r')
	}
	if b.any || !b.key.relaxed {
		b.crlfs = 0
		b.emit('\r')
		b.emit('\n')
	}
	b.flush()
	b.sum = b.h.Sum(nil)
	return b.sum
}

// short reports whether the canonical body is shorter than the l= limit,
// which makes the signature invalid.
func (b *bodyHasher) short() bool { return b.key.limit >= 0 && b.total < b.key.limit }
