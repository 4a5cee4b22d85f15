package arc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"io"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// Validator validates ARC chains (RFC 8617 §5.2). The zero value is not
// usable: DNS is required. A Validator is safe for concurrent use.
type Validator struct {
	// DNS fetches the signing keys (TXT at selector._domainkey.domain).
	DNS resolver.Querier
	// MaxInstances lowers the highest instance number accepted; zero or
	// anything above 50 means RFC 8617's 50.
	MaxInstances int
	// Now gives the time for x= expiry checks; nil means time.Now.
	Now func() time.Time
}

// Chain is the outcome of validating a message's ARC chain.
type Chain struct {
	// State is the Chain Validation Status: none, pass or fail.
	State State
	// Reason says why the chain failed; empty unless State is Fail
	// (Exim's $arc_state_reason).
	Reason string
	// Temp is true when the chain failed only because a key could not be
	// fetched for a temporary DNS reason: the verdict is not final, and
	// callers should defer or report temperror rather than treat the
	// chain as failed. Seal refuses such a chain.
	Temp bool
	// Instances are the ARC Sets found, Instances[k].I == k+1, up to the
	// highest instance number seen (members may be missing when State is
	// Fail).
	Instances []Instance
	// OldestPass is the lowest instance number whose
	// ARC-Message-Signature verifies, together with those of every newer
	// instance (RFC 8617 §5.2 step 5, Exim's $arc_oldest_pass). It is
	// set only when State is Pass, and is then between 1 and N; 1 means
	// the message is unchanged since the first sealer signed it.
	OldestPass int
	// Domains holds the ARC-Seal d= of each instance in chain order (i=1
	// first), empty where the seal is missing: joined with ":", Exim's
	// $arc_domains.
	Domains []string

	newestFailed bool // the newest seal says cv=fail: never add a set
}

// Instance describes one ARC Set of a chain.
type Instance struct {
	I int
	// AAR is the ARC-Authentication-Results payload after "i=N;": the
	// sealer's authserv-id and its results, in Authentication-Results
	// syntax, as written.
	AAR         string
	AMSDomain   string // d= of the ARC-Message-Signature
	AMSSelector string // s= of the ARC-Message-Signature
	ASDomain    string // d= of the ARC-Seal: the sealer
	ASSelector  string // s= of the ARC-Seal
	CV          State  // cv= of the ARC-Seal
	// AMSValid and ASValid are true when the signature was verified and
	// is good. The newest AMS and every seal are verified when the
	// structure is sound; older AMSs only while computing OldestPass.
	AMSValid, ASValid bool
	// AMSError and ASError say why a verified signature failed; empty
	// when it passed or was not verified.
	AMSError, ASError string
}

// Last returns the newest instance, or nil when there is none.
func (c *Chain) Last() *Instance {
	if len(c.Instances) == 0 {
		return nil
	}
	return &c.Instances[len(c.Instances)-1]
}

func (v *Validator) max() int {
	if v.MaxInstances <= 0 || v.MaxInstances > MaxInstances {
		return MaxInstances
	}
	return v.MaxInstances
}

func (v *Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Validate reads a whole message (header, empty line, body; CRLF or LF
// line breaks) and validates its ARC chain. The error is only for input
// that cannot be read: every verdict, fail included, is in the Chain.
func (v *Validator) Validate(ctx context.Context, msg io.Reader) (*Chain, error) {
	st := v.NewStream()
	br := readers.Get().(*bufio.Reader)
	br.Reset(msg)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	hp := headerBufs.Get().(*[]byte)
	hdr, err := readHeader(br, (*hp)[:0])
	if err != nil {
		return nil, err
	}
	st.fields = dkimcore.SplitHeader(hdr, dkimcore.Strict) // copies what it keeps
	if cap(hdr) <= 256<<10 {
		*hp = hdr
		headerBufs.Put(hp)
	}
	st.endHeader()
	if _, err := br.WriteTo(st); err != nil {
		return nil, err
	}
	return st.Finish(ctx), nil
}

// readers and headerBufs recycle the buffered readers and header buffers
// of Validate.
var (
	readers    = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}
	headerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}
)

// readHeader appends to hdr the header block up to and including the
// empty line that ends it (or to the end of the input).
func readHeader(br *bufio.Reader, hdr []byte) ([]byte, error) {
	lineStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		hdr = append(hdr, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			lineStart = false // the next chunk continues this line
			continue
		case err == io.EOF:
			return hdr, nil
		case err != nil:
			return nil, err
		}
		if lineStart && (len(chunk) == 1 || len(chunk) == 2 && chunk[0] == '\r') {
			return hdr, nil
		}
		lineStart = true
	}
}

// Stream validates a message fed in pieces, as a milter receives it:
// header fields one by one, then the body in chunks. Memory stays bounded
// by the header size: the body is hashed as it arrives.
type Stream struct {
	v        *Validator
	fields   []field
	inBody   bool
	hs       *HeaderSet
	hsErr    error
	bodies   map[bodyKey]*bodyHasher
	sealBody bool
	chain    *Chain
}

// NewStream starts validating a message.
func (v *Validator) NewStream() *Stream {
	return &Stream{v: v}
}

// Header adds one header field, as written: "Name: value", folded lines
// included, with or without the final line break. Fields must come in
// message order, before any body data. A line that is not a header field
// is reported and ignored.
func (s *Stream) Header(raw []byte) error {
	if s.inBody {
		return errors.New("arc: header field after the body")
	}
	f, err := dkimcore.NewField(raw)
	if err != nil {
		return fmt.Errorf("arc: %w", err)
	}
	s.fields = append(s.fields, f)
	return nil
}

// HashForSealing asks the stream to also compute the body hash an ARC
// Set added by Signer.SealStream needs. Call it before the first Write.
func (s *Stream) HashForSealing() { s.sealBody = true }

// Write adds body data. Line breaks may be CRLF or bare LF.
func (s *Stream) Write(p []byte) (int, error) {
	if s.chain != nil {
		return 0, errors.New("arc: body data after Finish")
	}
	if !s.inBody {
		s.endHeader()
	}
	for _, b := range s.bodies {
		b.Write(p)
	}
	return len(p), nil
}

// endHeader parses the ARC header fields and sets up the body hashes that
// the signatures to verify need.
func (s *Stream) endHeader() {
	if s.inBody {
		return
	}
	s.inBody = true
	s.hs, s.hsErr = collectSets(s.fields, s.v.max())
	s.bodies = map[bodyKey]*bodyHasher{}
	if s.hsErr == nil {
		for k := range s.hs.Sets {
			if key, ok := bodyKeyOf(s.hs.Sets[k].AMS); ok && s.bodies[key] == nil {
				s.bodies[key] = dkimcore.NewBodyHasher(key)
			}
		}
	}
	if k := sealBodyKey; s.sealBody && s.bodies[k] == nil {
		s.bodies[k] = dkimcore.NewBodyHasher(k)
	}
}

// Finish ends the message and validates the chain; ctx bounds the key
// lookups. Later calls return the same Chain without new lookups.
func (s *Stream) Finish(ctx context.Context) *Chain {
	if s.chain != nil {
		return s.chain
	}
	s.endHeader()
	for _, b := range s.bodies {
		b.Finish()
	}
	s.chain = s.evaluate(ctx)
	return s.chain
}

// evaluate runs RFC 8617 §5.2 on the collected header and body hashes.
func (s *Stream) evaluate(ctx context.Context) *Chain {
	hs := s.hs
	c := &Chain{State: None}
	for k := range hs.Sets {
		set := &hs.Sets[k]
		in := Instance{I: k + 1, AAR: set.AAR}
		if set.AMS != nil {
			in.AMSDomain, in.AMSSelector = set.AMS.Domain, set.AMS.Selector
		}
		if set.Seal != nil {
			in.ASDomain, in.ASSelector, in.CV = set.Seal.Domain, set.Seal.Selector, set.Seal.CV
		}
		c.Instances = append(c.Instances, in)
		c.Domains = append(c.Domains, in.ASDomain)
	}
	c.newestFailed = hs.newestFailed
	if s.hsErr != nil {
		c.State, c.Reason = Fail, s.hsErr.Error()
		return c
	}
	n := len(hs.Sets)
	if n == 0 {
		return c // step 1: no ARC Sets, none
	}
	vf := &verifier{ctx: ctx, dns: s.v.DNS, now: s.v.now(), fields: s.fields, hs: hs, bodies: s.bodies, keys: keyCache{}}
	c.State = Fail
	var temp *verifyError
	// Step 4: the newest AMS.
	if err := vf.verifyAMS(&hs.Sets[n-1]); err != nil {
		c.Instances[n-1].AMSError = err.msg
		if !err.temp {
			c.Reason = fmt.Sprintf("i=%d: %s: %s", n, HeaderAMS, err.msg)
			return c
		}
		temp = err
	} else {
		c.Instances[n-1].AMSValid = true
	}
	// Step 6: every seal, newest first.
	for k := n; k >= 1; k-- {
		if err := vf.verifyAS(k); err != nil {
			c.Instances[k-1].ASError = err.msg
			if !err.temp {
				c.Reason = fmt.Sprintf("i=%d: %s: %s", k, HeaderSeal, err.msg)
				return c
			}
			if temp == nil {
				temp = err
			}
			continue
		}
		c.Instances[k-1].ASValid = true
	}
	if temp != nil {
		c.Temp = true
		c.Reason = "temporary DNS failure: " + temp.msg
		return c
	}
	// Step 7: pass. Step 5 (optional): the oldest AMS that still verifies,
	// going down from N-1 and stopping at the first that does not.
	c.State = Pass
	c.OldestPass = n
	for k := n - 1; k >= 1; k-- {
		if err := vf.verifyAMS(&hs.Sets[k-1]); err != nil {
			c.Instances[k-1].AMSError = err.msg
			break
		}
		c.Instances[k-1].AMSValid = true
		c.OldestPass = k
	}
	return c
}
