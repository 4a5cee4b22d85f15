package dkim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/resolver"
)

// DefaultMaxSignatures is the number of signatures verified per message
// when Verifier.MaxSignatures is zero.
const DefaultMaxSignatures = 8

// MaxHeaderBytes bounds the header block a Stream buffers (the same bound
// as the milter's). A longer header makes End fail with ErrHeaderTooLarge.
const MaxHeaderBytes = 4 << 20

// Errors of a Stream.
var (
	// ErrHeaderTooLarge: the header block exceeded MaxHeaderBytes. Every
	// signature seen is reported as temperror.
	ErrHeaderTooLarge = errors.New("dkim: header exceeds the size limit")
	// ErrHeaderEnded: WriteField or EndHeader after the end of the header.
	ErrHeaderEnded = errors.New("dkim: header already ended")
	// ErrClosed: Write after End or Abort.
	ErrClosed = errors.New("dkim: stream closed")
)

// BodyBuffer is the body length past which a Stream starts the key
// queries before the end of the message, in a goroutine, so that DNS
// overlaps a long body. Up to it the queries run at End in the caller's
// goroutine, which costs less CPU than starting one.
const BodyBuffer = 64 << 10

// copyBufferPool holds Verify's copy buffers.
var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// reasonTooMany is the reason given to signatures beyond MaxSignatures.
const reasonTooMany = "too many signatures"

// Verifier verifies the DKIM signatures of messages (RFC 6376, RFC 8463)
// with the verification core shared with package arc, looking keys up through a resolver.Querier so that DNS
// failures give temperror, never permerror. A Verifier is safe for
// concurrent use; its fields must not change while in use.
type Verifier struct {
	// DNS answers the key queries (TXT at selector._domainkey.domain).
	DNS resolver.Querier
	// MaxSignatures caps the signatures verified per message, in header
	// order from the top; 0 means DefaultMaxSignatures. Signatures beyond
	// the cap cost no DNS query and no cryptography: they are reported
	// with status policy and reason "too many signatures", so that a
	// message with hundreds of signatures costs no more than the cap.
	MaxSignatures int
	// Now is the clock for the x= expiration check; nil means time.Now.
	Now func() time.Time
}

func (v *Verifier) maxSignatures() int {
	if v.MaxSignatures > 0 {
		return v.MaxSignatures
	}
	return DefaultMaxSignatures
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Verify verifies every DKIM-Signature of a message: msg is the raw
// message, header and body, with CRLF or LF line ends. It returns one
// Result per DKIM-Signature field in header order, or none when the
// message is not signed. DNS queries run under ctx.
func (v *Verifier) Verify(ctx context.Context, msg io.Reader) ([]Result, error) {
	s := v.NewStream(ctx)
	buf := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(buf)
	// The struct hides a WriterTo (strings.Reader's would convert the
	// whole message to a new byte slice).
	if _, err := io.CopyBuffer(s, struct{ io.Reader }{msg}, *buf); err != nil {
		s.Abort()
		return nil, err
	}
	return s.Close()
}

// Stream verifies a message fed in pieces, as a milter receives it: either
// raw bytes through Write (header, empty line, body), or header fields
// through WriteField, then EndHeader, then the body through Write. End (or
// Close) finishes it; Abort drops it.
//
// Memory stays bounded whatever the message size: the header block is
// buffered (up to MaxHeaderBytes); the body is canonicalised and hashed
// as it arrives, once per distinct body canonicalisation among the
// signatures, and never kept. Key queries run at End in the caller's
// goroutine, or from the moment the body passes BodyBuffer bytes in a
// goroutine of their own. When the header holds no DKIM-Signature nothing
// runs and the body is discarded as it comes. A Stream is not safe for
// concurrent use.
type Stream struct {
	v    Verifier
	ctx  context.Context
	st   streamState
	hdr  []byte // header bytes until the header ends (sc.hdr's memory)
	scan int    // hdr has no header end before this offset
	// marked: every byte of hdr was written by WriteField, each field
	// marked in sc.marks, all of them such that SplitHeader would find
	// them as they were written (see markable).
	marked bool
	sigs   []signature

	sc      *scratch // from the header's end to End
	bodies  dkimcore.BodyHashes
	bodyLen int64
	pw      *prefetch          // the prefetch worker: key queries started by a long body
	cancel  context.CancelFunc // cancels the prefetch worker's queries

	results []Result
	err     error
}

// scratch is what a Stream needs until End: the header block and its
// fields, the checks of the first MaxSignatures signatures and the key
// answers. Nothing in it outlives End (the Results hold copies of the
// strings they take from the header: buildResults), so it is pooled
// between messages.
type scratch struct {
	hdr     []byte      // the header block, the memory of Stream.hdr
	marks   []fieldMark // where WriteField put each field in hdr
	fields  []dkimcore.Field
	checks  []sigCheck
	keys    keyCache
	hash    hash.Hash // the header hash of one signature at a time
	canon   []byte    // one canonical header field at a time
	decoded []byte    // b= and bh= decoded
	names   []string  // the key names to query
	sigs    []signature
	sum     [sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return &scratch{hash: sha256.New()} }}

// maxPooledFields and maxPooledHeader bound what is kept in the pool: a
// hostile header's memory is left to the collector.
const (
	maxPooledFields = 1024
	maxPooledHeader = 64 << 10
)

// fieldMark is where WriteField put a field in the header block:
// hdr[start:end] is the field with its CRLF, its name ends at colon.
type fieldMark struct{ start, colon, end int }

// release empties sc, dropping its references to the message, and gives
// it back to the pool.
func (sc *scratch) release() {
	if cap(sc.fields) > maxPooledFields || cap(sc.checks) > DefaultMaxSignatures ||
		cap(sc.hdr) > maxPooledHeader || cap(sc.marks) > maxPooledFields {
		return
	}
	sc.hdr, sc.marks = sc.hdr[:0], sc.marks[:0]
	clear(sc.fields) // the used part: the rest was cleared before
	sc.fields = sc.fields[:0]
	for i := range sc.checks {
		sc.checks[i].reset()
	}
	sc.checks = sc.checks[:0]
	sc.keys.reset(nil, nil)
	clear(sc.names[:cap(sc.names)])
	clear(sc.sigs)
	sc.sigs = sc.sigs[:0]
	scratchPool.Put(sc)
}

// newCheck returns a cleared check at the end of sc.checks, reusing the
// buffers of a check of an earlier message.
func (sc *scratch) newCheck() *sigCheck {
	if n := len(sc.checks); n < cap(sc.checks) {
		sc.checks = sc.checks[:n+1]
	} else {
		sc.checks = append(sc.checks, sigCheck{})
	}
	return &sc.checks[len(sc.checks)-1]
}

type streamState int

const (
	stHeader streamState = iota
	stBody
	stEnded
)

// NewStream starts verifying one message. DNS queries run under ctx,
// which must stay valid until End.
func (v *Verifier) NewStream(ctx context.Context) *Stream {
	return &Stream{v: *v, ctx: ctx, marked: true}
}

// scratch returns the stream's pooled state, taking it from the pool on
// first use (with the header buffer it holds).
func (s *Stream) scratch() *scratch {
	if s.sc == nil {
		s.sc = scratchPool.Get().(*scratch)
		s.hdr = s.sc.hdr[:0]
	}
	return s.sc
}

// markable reports whether SplitHeader finds the field name:value as
// WriteField writes it: a name without white space, colon or line break,
// and a value whose every line break is a CRLF followed by white space
// (a fold). Other fields are split by SplitHeader itself.
func markable(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case ' ', '\t', '\r', '\n', ':':
			return false
		}
	}
	lfs := 0
	for i := strings.IndexByte(value, '\n'); i >= 0; {
		if i == 0 || value[i-1] != '\r' || i+1 == len(value) || value[i+1] != ' ' && value[i+1] != '\t' {
			return false
		}
		lfs++
		j := strings.IndexByte(value[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	// Each LF has its CR: as many CR as LF means no other CR.
	return strings.Count(value, "\r") == lfs
}

// Write takes the next bytes of the message: raw header bytes until the
// empty line that ends the header, then body bytes. It never returns an
// error for the message's content; after End or Abort it returns
// ErrClosed.
func (s *Stream) Write(p []byte) (int, error) {
	switch s.st {
	case stHeader:
		if s.err != nil {
			return len(p), nil
		}
		s.writeHeader(p)
	case stBody:
		s.writeBody(p)
	default:
		return 0, ErrClosed
	}
	return len(p), nil
}

// WriteField adds one header field: its name and its raw value after the
// colon, exactly as received (leading space and CRLF folding kept, which
// c=simple needs; LF folding is accepted too), without the final CRLF.
func (s *Stream) WriteField(name, value string) error {
	if s.st != stHeader {
		return ErrHeaderEnded
	}
	if s.err != nil {
		return nil
	}
	sc := s.scratch()
	start := len(s.hdr)
	s.hdr = append(s.hdr, name...)
	s.hdr = append(s.hdr, ':')
	s.hdr = append(s.hdr, value...)
	s.hdr = append(s.hdr, '\r', '\n')
	s.scan = len(s.hdr)
	if s.marked = s.marked && markable(name, value); s.marked {
		sc.marks = append(sc.marks, fieldMark{start, start + len(name), len(s.hdr)})
	}
	if len(s.hdr) > MaxHeaderBytes {
		s.failHeader()
	}
	return nil
}

// GrowHeader makes room for n more bytes of header fields, so that the
// WriteField calls of a header whose size is known copy it once (each
// field takes the bytes of its name and value plus 3, the end of the
// header 2). It is only a hint: n is capped at MaxHeaderBytes.
func (s *Stream) GrowHeader(n int) {
	if s.st == stHeader && s.err == nil && n > 0 {
		s.scratch()
		s.hdr = slices.Grow(s.hdr, min(n, MaxHeaderBytes+2))
	}
}

// EndHeader ends the header written with WriteField: the body follows.
func (s *Stream) EndHeader() error {
	if s.st != stHeader {
		return ErrHeaderEnded
	}
	if s.err != nil {
		s.st = stBody
		return nil
	}
	end := len(s.hdr)
	s.hdr = append(s.hdr, '\r', '\n')
	s.endHeader(end, len(s.hdr))
	return nil
}

// failHeader gives up on a header over MaxHeaderBytes: the signatures
// found so far are reported as temperror.
func (s *Stream) failHeader() {
	s.err = ErrHeaderTooLarge
	end := bytes.LastIndexByte(s.hdr, '\n')
	for _, v := range signatureValues(s.hdr[:end+1]) {
		s.sigs = append(s.sigs, parseSignature(v))
	}
	s.hdr = nil
}

// writeHeader takes raw bytes while the header lasts. It looks for the
// empty line that ends the header across the buffered bytes and p, keeps
// only the header part in s.hdr and passes the rest on as body, so a
// message written in one piece is not copied whole into the buffer.
func (s *Stream) writeHeader(p []byte) {
	s.scratch()
	s.marked = false
	n := len(s.hdr)
	at := func(k int) int { // byte k of s.hdr followed by p; -1 past the end
		switch {
		case k < n:
			return int(s.hdr[k])
		case k-n < len(p):
			return int(p[k-n])
		}
		return -1
	}
	// blank reports whether a line starts at k that is empty: the body
	// then starts at the returned offset. more is true when the bytes
	// needed to decide have not arrived.
	blank := func(k int) (body int, more bool) {
		switch c := at(k); c {
		case '\n':
			return k + 1, false
		case '\r':
			switch at(k + 1) {
			case '\n':
				return k + 2, false
			case -1:
				return 0, true
			}
		case -1:
			return 0, true
		}
		return 0, false
	}
	end, body := -1, -1
	if s.scan == 0 { // an empty header: the message starts with the empty line
		if b, more := blank(0); more {
			s.hdr = append(s.hdr, p...)
			return
		} else if b > 0 {
			end, body = 0, b
		}
	}
	for k := s.scan; end < 0 && k < n; k++ {
		if s.hdr[k] != '\n' {
			continue
		}
		b, more := blank(k + 1)
		if more {
			break
		}
		if b > 0 {
			end, body = k+1, b
		}
	}
	for i := 0; end < 0; {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		k := n + i + j
		i += j + 1
		b, more := blank(k + 1)
		if more {
			break
		}
		if b > 0 {
			end, body = k+1, b
		}
	}
	if end < 0 {
		s.hdr = append(s.hdr, p...)
		s.scan = max(0, len(s.hdr)-2)
		if len(s.hdr) > MaxHeaderBytes {
			s.failHeader()
		}
		return
	}
	s.hdr = append(s.hdr, p[:body-n]...)
	if end > MaxHeaderBytes {
		s.failHeader()
		return
	}
	s.endHeader(end, body)
	s.writeBody(p[body-n:])
}

// endHeader handles the end of the header: hdr[:end] is the header block.
// The signatures are read and checked, and the body hashes they need set
// up.
func (s *Stream) endHeader(end, _ int) {
	s.st = stBody
	sc := s.scratch()
	// The fields share the header's bytes, not a copy: the stream drops
	// s.hdr here and never writes those bytes again until End or Abort
	// give them back to the pool.
	hdr := s.hdr[:end]
	sc.hdr = s.hdr
	s.sigs = sc.sigs[:0] // given back with sc
	text := unsafe.String(unsafe.SliceData(hdr), len(hdr))
	if s.marked && len(sc.marks) > 0 && sc.marks[len(sc.marks)-1].end == end {
		sc.fields = fieldsOf(sc.fields[:0], text, sc.marks)
	} else {
		sc.fields = dkimcore.SplitHeaderInto(sc.fields, text, dkimcore.Lenient)
	}
	s.hdr = nil
	now := s.v.now()
	limit := s.v.maxSignatures()
	for i := range sc.fields {
		f := &sc.fields[i]
		if f.LName != "dkim-signature" {
			continue
		}
		if len(sc.checks) >= limit {
			s.sigs = append(s.sigs, parseSignature(f.Value()))
			continue
		}
		c := sc.newCheck()
		if bk, ok := c.prepare(f, now); ok {
			c.body = s.bodies.Add(bk)
		}
		if c.tags != nil {
			s.sigs = append(s.sigs, c.signature())
		} else {
			s.sigs = append(s.sigs, parseSignature(f.Value()))
		}
	}
	if len(s.sigs) == 0 {
		s.sigs, s.sc = nil, nil
		sc.release()
		return
	}
	sc.keys.reset(s.ctx, s.v.DNS)
}

// fieldsOf appends the fields WriteField marked in the header text: what
// SplitHeader would find there (markable).
func fieldsOf(fields []dkimcore.Field, text string, marks []fieldMark) []dkimcore.Field {
	for _, m := range marks {
		name := text[m.start:m.colon]
		fields = append(fields, dkimcore.Field{Name: name, LName: dkimcore.LowerName(name), Raw: text[m.start:m.end], Colon: m.colon - m.start})
	}
	return fields
}

// writeBody hashes body bytes, and starts the key queries once the body
// is long.
func (s *Stream) writeBody(p []byte) {
	if s.bodies.Len() == 0 || len(p) == 0 {
		return
	}
	s.bodies.Write(p)
	s.bodyLen += int64(len(p))
	if s.pw == nil && s.bodyLen > BodyBuffer {
		// The worker's queries run under a context of their own, which
		// Cancel cancels.
		s.sc.keys.ctx, s.cancel = context.WithCancel(s.ctx)
		s.pw = startPrefetch(&s.sc.keys, s.keyNames())
	}
}

// Cancel cancels the key queries a long body started in a goroutine (see
// Stream): End then finishes with those keys unavailable (temperror).
// It may be called from another goroutine, and more than once; it does
// nothing when no query was started that way.
func (s *Stream) Cancel() {
	if s.cancel != nil {
		s.cancel()
	}
}

// keyNames returns the distinct keys the signatures still need, in the
// scratch state's buffer.
func (s *Stream) keyNames() []string {
	names := s.sc.names[:0]
	defer func() { s.sc.names = names[:0] }()
	for i := range s.sc.checks {
		c := &s.sc.checks[i]
		if c.decided {
			continue
		}
		dup := false
		for _, n := range names {
			if n == c.keyName {
				dup = true
				break
			}
		}
		if !dup {
			names = append(names, c.keyName)
		}
	}
	return names
}

// End finishes the message and verifies the signatures; Results then
// returns them. A message without an empty line after the header is
// taken as a header without body. End returns ErrHeaderTooLarge when the
// header was too large (the Results are then temperror); calling End
// again returns the same error.
func (s *Stream) End() error { return s.EndContext(nil) }

// EndContext is End with the key queries End runs itself (those the body
// did not start, see Stream) bounded by ctx instead of the Stream's
// context: the deadline of the caller that waits for them. The Stream's
// context must not be done yet then; with a nil ctx it is End.
func (s *Stream) EndContext(ctx context.Context) error {
	switch s.st {
	case stEnded:
		return s.err
	case stHeader:
		if s.err == nil && len(s.hdr) > 0 {
			end := len(s.hdr)
			if s.hdr[end-1] != '\n' {
				s.hdr = append(s.hdr, '\r', '\n')
				end = len(s.hdr)
			}
			s.hdr = append(s.hdr, '\r', '\n')
			s.endHeader(end, len(s.hdr))
		}
	}
	s.st = stEnded
	sc := s.sc
	if sc != nil && s.err == nil {
		s.bodies.Finish()
		if s.pw != nil {
			s.pw.wait()
		} else if names := s.keyNames(); len(names) > 0 {
			if ctx != nil && s.ctx.Err() == nil {
				sc.keys.ctx = ctx // no worker reads it: End runs the queries
			}
			sc.keys.fetch(names)
		}
		var idx dkimcore.FieldIndex
		for i := range sc.checks {
			sc.checks[i].finish(sc, &idx)
		}
	}
	s.results = s.buildResults()
	if sc != nil {
		sc.sigs, s.sigs, s.sc = s.sigs, nil, nil
		sc.release() // no worker runs: it was waited for
	}
	s.bodies.Release()
	return s.err
}

// Prefetching reports whether End would wait for key queries the body
// started in a goroutine of their own (see Stream) that have not all been
// answered yet: those run under the Stream's context, which EndContext
// does not replace.
func (s *Stream) Prefetching() bool {
	if s.st != stBody || s.pw == nil {
		return false
	}
	select {
	case <-s.pw.done:
		return false
	default:
		return true
	}
}

// Results returns the results after End: one per DKIM-Signature field in
// header order, nil for an unsigned message.
func (s *Stream) Results() []Result { return s.results }

// Close is End followed by Results.
func (s *Stream) Close() ([]Result, error) {
	err := s.End()
	return s.results, err
}

// Abort drops the message. Key queries already started finish on their
// own when the DNS answers; nothing waits for them.
func (s *Stream) Abort() {
	if s.st == stEnded {
		return
	}
	s.st = stEnded
	s.hdr = nil
	if sc := s.sc; sc != nil {
		s.sc = nil
		if s.pw == nil { // a running worker still writes to sc.keys
			sc.sigs, s.sigs = s.sigs, nil
			sc.release()
		}
	}
	s.bodies.Release()
}

// buildResults turns the checks and the signature tags into Results.
func (s *Stream) buildResults() []Result {
	if len(s.sigs) == 0 {
		return nil
	}
	out := make([]Result, len(s.sigs))
	// The tags are copied out of the header, whose memory goes back to
	// the pool: into one string for all of them.
	n := 0
	for _, sig := range s.sigs {
		n += len(sig.domain) + len(sig.identifier) + len(sig.selector) + len(sig.algorithm) + len(sig.bprefix)
	}
	var b strings.Builder
	b.Grow(n)
	for _, sig := range s.sigs {
		for _, t := range [...]string{sig.domain, sig.identifier, sig.selector, sig.algorithm, sig.bprefix} {
			b.WriteString(t)
		}
	}
	tags := b.String()
	take := func(t string) string {
		t, tags = tags[:len(t)], tags[len(t):]
		return t
	}
	for i, sig := range s.sigs {
		r := &out[i] // filled in place: a Result is large
		r.Domain, r.Identifier, r.Selector = take(sig.domain), take(sig.identifier), take(sig.selector)
		r.Algorithm, r.BPrefix = take(sig.algorithm), take(sig.bprefix)
		switch {
		case i >= s.v.maxSignatures():
			r.Status, r.Reason = Policy, reasonTooMany
		case s.err != nil || s.sc == nil || i >= len(s.sc.checks):
			r.Status, r.Reason, r.Err = TempError, "header too large to verify", s.err
		default:
			c := &s.sc.checks[i]
			r.Status, r.Testing = c.status, c.testing
			if c.status != Pass {
				r.Reason, r.Err = c.reason, c.err
			}
		}
	}
	return out
}
