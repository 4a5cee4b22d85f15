package dkimcore

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"sync"
)

// Body canonicalisation (RFC 6376 §3.4.3 and §3.4.4) and body hash
// (§3.7), streamed.

// BodyKey identifies one body hash: its canonicalisation and length
// limit. Every accepted algorithm hashes with SHA-256.
type BodyKey struct {
	Relaxed bool
	Limit   int64 // l=, or -1 for the whole body
}

// bodyBuffer is the canonical bytes gathered before they go to SHA-256
// in one call.
const bodyBuffer = 4096

// BodyHasher canonicalises a body written in chunks of any size and
// hashes it. Memory is bounded: runs of empty lines and of white space
// are held as counts, never as bytes. Both CRLF and a bare LF end a line;
// a bare CR is an ordinary character. The work is linear in the body
// size: each byte is classified once, runs of ordinary bytes are copied
// whole.
type BodyHasher struct {
	key    BodyKey
	h      hash.Hash
	total  int64 // canonical bytes produced, hashed or not (for l=)
	crlfs  int64 // line ends held back: dropped if only empty lines follow
	wsp    bool  // relaxed: white space held back on the current line
	cr     bool  // a CR held back: it may start a CRLF
	any    bool  // any content produced
	done   bool
	n      int // bytes in buf
	buf    [bodyBuffer]byte
	sum    []byte
	sumBuf [sha256.Size]byte
}

// NewBodyHasher starts a SHA-256 body hash.
func NewBodyHasher(key BodyKey) *BodyHasher {
	return &BodyHasher{key: key, h: sha256.New()}
}

// Key returns the canonicalisation and limit of the hash.
func (b *BodyHasher) Key() BodyKey { return b.key }

// The byte classes of the body canonicalisations.
const (
	classText = iota
	classWSP  // relaxed only: SP and HTAB
	classCR
	classLF
)

var relaxedClass = func() (t [256]byte) {
	t[' '], t['\t'], t['\r'], t['\n'] = classWSP, classWSP, classCR, classLF
	return t
}()

var crByte = []byte{'\r'}

// Write canonicalises and hashes the next piece of the body. It never
// fails.
func (b *BodyHasher) Write(p []byte) (int, error) {
	if b.key.Limit >= 0 && b.total >= b.key.Limit {
		return len(p), nil // l= reached: the rest of the body is not signed
	}
	if b.key.Relaxed {
		b.writeRelaxed(p)
	} else {
		b.writeSimple(p)
	}
	return len(p), nil
}

// writeSimple: lines are copied whole, their line ends counted.
func (b *BodyHasher) writeSimple(p []byte) {
	for len(p) > 0 {
		if b.cr {
			b.cr = false
			if p[0] == '\n' {
				b.crlfs++
				p = p[1:]
				continue
			}
			b.content(crByte)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			n := len(p)
			if p[n-1] == '\r' {
				b.cr = true
				n--
			}
			if n > 0 {
				b.content(p[:n])
			}
			return
		}
		line := p[:i]
		if i > 0 && line[i-1] == '\r' {
			line = line[:i-1]
		}
		if len(line) > 0 {
			b.content(line)
		}
		b.crlfs++
		p = p[i+1:]
	}
}

// writeRelaxed: runs left as written are passed on whole (relaxedRun);
// white space is held as a flag, dropped at the end of a line.
func (b *BodyHasher) writeRelaxed(p []byte) {
	for i := 0; i < len(p); {
		if b.cr {
			b.cr = false
			if p[i] == '\n' {
				b.wsp = false
				b.crlfs++
				i++
				continue
			}
			b.content(crByte)
		}
		switch relaxedClass[p[i]] {
		case classText:
			// A run that relaxed canonicalisation leaves as written
			// (text, single spaces, line ends between text) goes to the
			// hash in one piece, straight from p when it is long.
			j := relaxedRun(p, i)
			b.content(p[i:j])
			i = j
		case classWSP:
			b.wsp = true
			i++
		case classCR:
			b.cr = true
			i++
		case classLF:
			b.wsp = false
			b.crlfs++
			i++
		}
	}
}

var crlfBlock = bytes.Repeat([]byte("\r\n"), 256)

// content emits a run of text, after the line ends and the white space
// held back before it.
func (b *BodyHasher) content(run []byte) {
	for b.crlfs > 0 {
		n := min(b.crlfs, int64(len(crlfBlock)/2))
		b.emit(crlfBlock[:2*n])
		b.crlfs -= n
	}
	if b.wsp {
		b.wsp = false
		b.emitByte(' ')
	}
	b.any = true
	b.emit(run)
}

func (b *BodyHasher) emitByte(c byte) {
	if b.key.Limit >= 0 && b.total >= b.key.Limit {
		b.total++
		return
	}
	b.total++
	if b.n == len(b.buf) {
		b.flush()
	}
	b.buf[b.n] = c
	b.n++
}

// emit hashes canonical bytes, up to the l= limit.
func (b *BodyHasher) emit(p []byte) {
	if b.key.Limit >= 0 {
		room := b.key.Limit - b.total
		b.total += int64(len(p))
		if room <= 0 {
			return
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	} else {
		b.total += int64(len(p))
	}
	if b.n+len(p) > len(b.buf) {
		b.flush()
		if len(p) >= len(b.buf)/2 {
			b.h.Write(p)
			return
		}
	}
	b.n += copy(b.buf[b.n:], p)
}

func (b *BodyHasher) flush() {
	if b.n > 0 {
		b.h.Write(b.buf[:b.n])
		b.n = 0
	}
}

// Finish ends the body and returns the hash; later calls return the same
// sum. A body ends with exactly one CRLF: trailing empty lines are
// dropped, a missing final CRLF is added. An empty body is CRLF in simple
// and empty in relaxed canonicalisation.
func (b *BodyHasher) Finish() []byte {
	if b.done {
		return b.sum
	}
	b.done = true
	if b.cr {
		b.cr = false
		b.content(crByte)
	}
	if b.any || !b.key.Relaxed {
		b.crlfs = 0
		b.emit(crlfBlock[:2])
	}
	b.flush()
	b.sum = b.h.Sum(b.sumBuf[:0])
	return b.sum
}

// Short reports whether the canonical body is shorter than the l= limit,
// which makes the signature invalid (RFC 6376 §3.4.5).
func (b *BodyHasher) Short() bool { return b.key.Limit >= 0 && b.total < b.key.Limit }

// BodyHashes feeds one body to every distinct body hash the signatures of
// a message need: each (canonicalisation, l=) pair is hashed once however
// many signatures share it. A BodyHashes in use must not be copied.
type BodyHashes struct {
	list  []*BodyHasher
	first [2]*BodyHasher // the memory of list for the usual one or two
}

// hasherPool keeps the hashers Release gives back: each holds a 4 KiB
// buffer that would otherwise be allocated and cleared per message.
var hasherPool = sync.Pool{New: func() any { return &BodyHasher{h: sha256.New()} }}

// Add asks for the hash of key and returns its hasher, shared with the
// earlier requests for the same key.
func (s *BodyHashes) Add(key BodyKey) *BodyHasher {
	if h := s.Get(key); h != nil {
		return h
	}
	h := hasherPool.Get().(*BodyHasher)
	h.reset(key)
	if s.list == nil {
		s.list = s.first[:0]
	}
	s.list = append(s.list, h)
	return h
}

// reset makes b a new hasher for key; the buffer keeps its old bytes,
// which are never read before they are written.
func (b *BodyHasher) reset(key BodyKey) {
	b.key = key
	b.h.Reset()
	b.total, b.crlfs, b.n = 0, 0, 0
	b.wsp, b.cr, b.any, b.done = false, false, false, false
	b.sum = nil
}

// Release gives the hashers back for other messages. Neither they, nor
// the sums Finish returned, may be used afterwards; s is empty again.
func (s *BodyHashes) Release() {
	for _, h := range s.list {
		hasherPool.Put(h)
	}
	clear(s.list)
	s.list = s.list[:0]
}

// Get returns the hasher of key, or nil when it was not asked for.
func (s *BodyHashes) Get(key BodyKey) *BodyHasher {
	for _, h := range s.list {
		if h.key == key {
			return h
		}
	}
	return nil
}

// Len returns the number of distinct hashes computed.
func (s *BodyHashes) Len() int { return len(s.list) }

// Write passes a piece of the body to every hash.
func (s *BodyHashes) Write(p []byte) (int, error) {
	for _, h := range s.list {
		h.Write(p)
	}
	return len(p), nil
}

// Finish ends the body of every hash.
func (s *BodyHashes) Finish() {
	for _, h := range s.list {
		h.Finish()
	}
}
