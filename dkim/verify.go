package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

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

// BodyBuffer is the body size up to which a Stream keeps the body and
// verifies at End without a goroutine; longer bodies are streamed.
const BodyBuffer = 64 << 10

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, BodyBuffer+8<<10); return &b }}

// pipeBuffer is the read buffer between a Stream and go-msgauth.
const pipeBuffer = 32 << 10

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, pipeBuffer); return &b }}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, pipeBuffer) }}

// reasonTooMany is the reason given to signatures beyond MaxSignatures.
const reasonTooMany = "too many signatures"

// Verifier verifies the DKIM signatures of messages (RFC 6376, RFC 8463)
// with go-msgauth, looking keys up through a resolver.Querier so that DNS
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
// buffered (up to MaxHeaderBytes), and so is the body up to BodyBuffer
// bytes; such a message is verified at End, in the caller's goroutine, key
// queries included. That is the cheapest way in CPU: a goroutine started
// per message costs more than the rest of this package's work (waking an
// idle processor). A longer body switches to streaming: go-msgauth runs
// in a goroutine, queries the keys at once and takes the body through a
// pipe into its hashers, so DNS overlaps the body and a Write may wait for
// it. When the header holds no DKIM-Signature nothing runs and the body
// is discarded as it comes. A Stream is not safe for concurrent use.
type Stream struct {
	v    *Verifier
	ctx  context.Context
	st   streamState
	hdr  []byte // header bytes until the header ends
	scan int    // hdr has no header end before this offset
	sigs []signature
	keys *keyCache

	buf      *[]byte // the header block, its empty line and the body so far, while it fits
	headLen  int     // the header's share of buf
	pw       *io.PipeWriter
	done     chan struct{} // closed when the go-msgauth goroutine returns
	verifs   []*msgdkim.Verification
	verr     error
	draining bool // the verifier stopped reading: discard the rest

	results []Result
	err     error
}

type streamState int

const (
	stHeader streamState = iota
	stBody
	stEnded
)

// errVerifierDone closes the pipe's read side once go-msgauth returns, so
// that later writes are discarded instead of blocking.
var errVerifierDone = errors.New("verifier done")

// NewStream starts verifying one message. DNS queries run under ctx,
// which must stay valid until End.
func (v *Verifier) NewStream(ctx context.Context) *Stream {
	return &Stream{v: v, ctx: ctx}
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
	s.hdr = append(s.hdr, name...)
	s.hdr = append(s.hdr, ':')
	s.hdr = append(s.hdr, value...)
	s.hdr = append(s.hdr, '\r', '\n')
	s.scan = len(s.hdr)
	if len(s.hdr) > MaxHeaderBytes {
		s.failHeader()
	}
	return nil
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

// endHeader handles the end of the header: hdr[:end] is the header block,
// hdr[:body] the header with its empty line. With signatures, the header
// and then the body are kept (up to BodyBuffer) for a verification at End.
func (s *Stream) endHeader(end, body int) {
	s.st = stBody
	for _, v := range signatureValues(s.hdr[:end]) {
		s.sigs = append(s.sigs, parseSignature(v))
	}
	if len(s.sigs) == 0 {
		s.hdr = nil
		s.draining = true
		return
	}
	lookup := noResolver
	if s.v.DNS != nil {
		lookup = resolver.TXTLookup(s.ctx, s.v.DNS)
	}
	s.keys = &keyCache{lookup: lookup, entries: map[string]*keyEntry{}}
	s.buf = bodyPool.Get().(*[]byte)
	*s.buf = append((*s.buf)[:0], s.hdr[:body]...)
	s.headLen = body
	s.hdr = nil
}

// writeBody keeps body bytes while they fit in BodyBuffer, then switches
// to streaming them to go-msgauth through a pipe, or drops them once
// go-msgauth stopped reading.
func (s *Stream) writeBody(p []byte) {
	switch {
	case s.draining || len(p) == 0 || s.pw == nil && s.buf == nil:
	case s.pw != nil:
		if _, err := s.pw.Write(p); err != nil {
			s.draining = true
		}
	case len(*s.buf)-s.headLen+len(p) <= BodyBuffer:
		*s.buf = append(*s.buf, p...)
	default:
		s.startPipe()
		kept := s.buf
		s.buf = nil
		s.writeBody(*kept)
		releaseBuffer(kept)
		s.writeBody(p)
	}
}

// startPipe runs go-msgauth in a goroutine that reads the message from a
// pipe.
func (s *Stream) startPipe() {
	pr, pw := io.Pipe()
	s.pw, s.done = pw, make(chan struct{})
	opts := s.options()
	go func() {
		defer close(s.done)
		// A large buffer: go-msgauth keeps a bufio.Reader this size as it
		// is, so the body crosses the pipe in few hand-offs. go-msgauth is
		// done with it when it returns.
		br := readerPool.Get().(*bufio.Reader)
		br.Reset(pr)
		s.verifs, s.verr = msgdkim.VerifyWithOptions(br, opts)
		br.Reset(nil)
		readerPool.Put(br)
		pr.CloseWithError(errVerifierDone)
	}()
}

func (s *Stream) options() *msgdkim.VerifyOptions {
	return &msgdkim.VerifyOptions{LookupTXT: s.keys.get, MaxVerifications: s.v.maxSignatures()}
}

func (s *Stream) releaseBody() {
	if s.buf != nil {
		releaseBuffer(s.buf)
		s.buf = nil
	}
}

// releaseBuffer returns a message buffer to the pool, unless a huge
// header made it grow.
func releaseBuffer(b *[]byte) {
	if cap(*b) <= 2*BodyBuffer {
		*b = (*b)[:0]
		bodyPool.Put(b)
	}
}

// End finishes the message and waits for the verifications; Results then
// returns them. A message without an empty line after the header is
// taken as a header without body. End returns ErrHeaderTooLarge when the
// header was too large (the Results are then temperror); calling End
// again returns the same error.
func (s *Stream) End() error {
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
	switch {
	case s.pw != nil:
		s.pw.Close()
		<-s.done
	case s.buf != nil:
		// The whole message is here: verify it in this goroutine. go-msgauth
		// keeps a bufio.Reader of 4 KiB or more as it is.
		br := readerPool.Get().(*bufio.Reader)
		br.Reset(bytes.NewReader(*s.buf))
		s.verifs, s.verr = msgdkim.VerifyWithOptions(br, s.options())
		br.Reset(nil)
		readerPool.Put(br)
		s.releaseBody()
	}
	s.results = s.buildResults()
	return s.err
}

// Results returns the results after End: one per DKIM-Signature field in
// header order, nil for an unsigned message.
func (s *Stream) Results() []Result { return s.results }

// Close is End followed by Results.
func (s *Stream) Close() ([]Result, error) {
	err := s.End()
	return s.results, err
}

// Abort drops the message. Goroutines finish on their own (key queries
// when the DNS answers; a streaming go-msgauth when its pipe is closed as
// if the body ended); nothing waits for them.
func (s *Stream) Abort() {
	if s.st == stEnded {
		return
	}
	s.st = stEnded
	if s.pw != nil {
		s.pw.Close()
	}
	s.releaseBody()
	s.hdr = nil
}

// buildResults turns go-msgauth's verifications, the signature tags and
// the key records into Results.
func (s *Stream) buildResults() []Result {
	if len(s.sigs) == 0 {
		return nil
	}
	limit := s.v.maxSignatures()
	now := s.v.now()
	out := make([]Result, len(s.sigs))
	for i, sig := range s.sigs {
		r := Result{
			Domain: sig.domain, Identifier: sig.identifier, Selector: sig.selector,
			Algorithm: sig.algorithm, BPrefix: sig.bprefix,
		}
		switch {
		case i >= limit:
			r.Status, r.Reason = Policy, reasonTooMany
		case s.err != nil:
			r.Status, r.Reason, r.Err = TempError, "header too large to verify", s.err
		case i >= len(s.verifs) || s.verifs[i] == nil:
			err := s.verr
			if err == nil {
				err = errors.New("dkim: no verification result")
			}
			r.Status, r.Reason, r.Err = TempError, "verification did not complete", err
		default:
			s.judge(&r, sig, s.verifs[i].Err, now)
		}
		out[i] = r
	}
	return out
}

// judge sets the status of one verified signature from go-msgauth's error
// and this package's own checks: x= against Verifier.Now, x= after t=,
// and the key flags t=y (reported) and t=s (i= domain must equal d=).
func (s *Stream) judge(r *Result, sig signature, err error, now time.Time) {
	r.Status, r.Reason = classify(err, sig)
	r.Err = err
	keyName := strings.ToLower(sig.selector + "._domainkey." + sig.domain)
	rec, recErr, looked := s.keys.result(keyName)
	if r.Status == TempError && looked && recErr != nil {
		r.Reason = "key unavailable: " + dnsErrorText(recErr)
	}
	if looked && recErr == nil && len(rec) == 1 {
		var strict bool
		r.Testing, strict = keyFlags(rec[0])
		if strict && r.Status == Pass && identifierDomain(sig.identifier) != sig.domain {
			r.Status, r.Reason = PermError, "i= domain is not d= and the key demands it (t=s)"
			r.Err = errors.New("dkim: " + r.Reason)
		}
	}
	if r.Status != Pass && r.Status != Fail {
		return
	}
	if sig.err != nil {
		r.Status, r.Reason, r.Err = PermError, sig.err.Error(), sig.err
		return
	}
	if r.Status == Pass && sig.hasExpiry && now.After(sig.expiry) {
		r.Status, r.Reason = Fail, "signature expired"
		r.Err = errors.New("dkim: signature expired at " + sig.expiry.UTC().Format(time.RFC3339))
	}
}

// classify maps a go-msgauth verification error to a status and reason.
// go-msgauth rejects l= outright; that is a local policy (RFC 8601
// §2.7.1), so it becomes policy, not fail. Its expiry check (against the
// real clock) gives fail, as this package's own does.
func classify(err error, sig signature) (Status, string) {
	if err == nil {
		return Pass, ""
	}
	reason := strings.TrimPrefix(err.Error(), "dkim: ")
	if i := strings.Index(reason, ": lookup "); i >= 0 {
		reason = reason[:i]
	}
	switch {
	case msgdkim.IsTempFail(err):
		return TempError, reason
	case msgdkim.IsPermFail(err):
		if strings.Contains(reason, "signature has expired") {
			return Fail, "signature expired"
		}
		return PermError, reason
	case sig.hasLength && strings.Contains(reason, "body length"):
		return Policy, "body length limit (l=) not accepted"
	}
	return Fail, reason
}

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

// noResolver is the key lookup of a Verifier without DNS: every key is
// temporarily unavailable.
func noResolver(name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no DNS resolver configured", Name: name, IsTemporary: true}
}

// keyCache runs each key query once per message and keeps the answer,
// so that the key record's flags can be read after go-msgauth is done.
type keyCache struct {
	lookup  func(string) ([]string, error)
	mu      sync.Mutex
	entries map[string]*keyEntry
}

type keyEntry struct {
	done chan struct{} // closed when the answer is in
	txts []string
	err  error // what go-msgauth gets: a *net.DNSError
}

// get is go-msgauth's LookupTXT. Concurrent calls for one name (go-msgauth
// verifies several signatures in parallel) share one query.
func (k *keyCache) get(name string) ([]string, error) {
	key := strings.ToLower(name)
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

// result returns the answer to a key query if it is in; looked is false
// when go-msgauth did not ask for the key.
func (k *keyCache) result(name string) (txts []string, err error, looked bool) {
	if k == nil {
		return nil, nil, false
	}
	k.mu.Lock()
	e := k.entries[name]
	k.mu.Unlock()
	if e == nil {
		return nil, nil, false
	}
	select {
	case <-e.done:
		return e.txts, e.err, true
	default:
		return nil, nil, false
	}
}
