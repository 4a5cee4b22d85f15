package dkim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
)

// requiredTags are the tags every DKIM-Signature has (RFC 6376 §3.5).
var requiredTags = []string{"v", "a", "b", "bh", "d", "h", "s"}

// sigCheck is the verification of one DKIM-Signature field (RFC 6376
// §6.1), in two steps: prepare reads and checks the tags at the end of
// the header (and asks for the body hash the signature needs), finish
// takes the key and the body hash at the end of the message. The checks
// run in the order go-msgauth ran them, so that a signature with several
// faults reports the same one.
type sigCheck struct {
	field *dkimcore.Field
	tags  dkimcore.TagList

	// tagBuf and nameBuf keep the memory of tags and names for the next
	// message (see scratch).
	tagBuf  dkimcore.TagList
	nameBuf []string

	decided bool // the outcome is known without the key
	status  Status
	reason  string
	err     error
	testing bool // the key says t=y

	domain        string // d=, lower case
	identifier    string // i=, or "@" + d=
	keyName       string // selector._domainkey.domain
	alg           string // a=
	names         []string
	relaxedHeader bool
	canonErr      error
	hasLength     bool
	body          *dkimcore.BodyHasher // nil when no body hash is needed
}

func (c *sigCheck) decide(st Status, reason string, err error) *sigCheck {
	if err == nil {
		err = errors.New("dkim: " + reason)
	}
	c.decided, c.status, c.reason, c.err = true, st, reason, err
	return c
}

func (c *sigCheck) perm(reason string) *sigCheck { return c.decide(PermError, reason, nil) }

// prepare checks what the signature says about itself: tag syntax, v=,
// the required tags, i= within d=, From signed, t= and x= (against the
// verifier's clock and, as go-msgauth did, the real one), q=. It returns
// the body hash the signature needs, if it may still pass.
// c is a cleared check (reset), whose tag and name buffers are reused.
func (c *sigCheck) prepare(f *dkimcore.Field, now time.Time) (dkimcore.BodyKey, bool) {
	c.field = f
	tags, err := dkimcore.ParseTagListInto(c.tagBuf[:0], f.Value())
	if err != nil {
		clear(c.tagBuf[:cap(c.tagBuf)]) // what the parse wrote before it failed
		c.decide(PermError, "malformed signature tags: "+err.Error(), fmt.Errorf("dkim: malformed signature tags: %w", err))
		return dkimcore.BodyKey{}, false
	}
	c.tags, c.tagBuf = tags, tags
	if v, _ := tags.Get("v"); v != "1" {
		c.perm("incompatible signature version")
		return dkimcore.BodyKey{}, false
	}
	for _, t := range requiredTags {
		if _, ok := tags.Get(t); !ok {
			c.perm("signature missing required tag")
			return dkimcore.BodyKey{}, false
		}
	}
	if !c.readIdentity() || !c.readTimes(now) {
		return dkimcore.BodyKey{}, false
	}
	if q, ok := tags.Get("q"); ok && !containsFold(dkimcore.SplitColonList(q), "dns/txt") {
		c.perm("unsupported public key query method")
		return dkimcore.BodyKey{}, false
	}
	a, _ := tags.Get("a")
	c.alg = dkimcore.StripFWS(a) // compared as written, as go-msgauth did

	cv, present := tags.Get("c")
	var relaxedBody bool
	c.relaxedHeader, relaxedBody, c.canonErr = dkimcore.ParseCanon(dkimcore.StripFWS(cv), present)
	_, c.hasLength = tags.Get("l")
	if c.canonErr != nil || c.hasLength || dkimcore.KeyTypeOf(c.alg) == "" {
		return dkimcore.BodyKey{}, false // refused after the key query, as go-msgauth did: no body hash
	}
	return dkimcore.BodyKey{Relaxed: relaxedBody, Limit: -1}, true
}

// reset clears the check for another message, keeping its buffers: their
// used part, the rest was cleared before.
func (c *sigCheck) reset() {
	clear(c.tagBuf)
	clear(c.nameBuf)
	*c = sigCheck{tagBuf: c.tagBuf[:0], nameBuf: c.nameBuf[:0]}
}

// readIdentity reads d=, s=, i= and h=: i= must be d= or a subdomain of
// it (RFC 6376 §3.5), h= must list From (§5.4.1).
func (c *sigCheck) readIdentity() bool {
	d, _ := c.tags.Get("d")
	c.domain = ascii.Lower(dkimcore.StripFWS(d))
	c.identifier = "@" + c.domain
	if i, ok := c.tags.Get("i"); ok {
		c.identifier = dkimcore.StripFWS(i)
		at := strings.LastIndexByte(c.identifier, '@')
		dom := ascii.Lower(c.identifier[at+1:])
		if at < 0 || dom != c.domain && !strings.HasSuffix(dom, "."+c.domain) {
			c.perm("domain mismatch")
			return false
		}
	}
	s, _ := c.tags.Get("s")
	c.keyName = dkimcore.StripFWS(s) + "._domainkey." + c.domain
	h, _ := c.tags.Get("h")
	c.names = dkimcore.SplitColonListInto(c.nameBuf[:0], h)
	c.nameBuf = c.names
	for i, n := range c.names {
		c.names[i] = dkimcore.LowerName(n)
	}
	if !containsFold(c.names, "from") {
		c.perm("From field not signed")
		return false
	}
	return true
}

// readTimes checks t= and x=: 1 to 12 digits each, x= after t=, and x=
// not past by the verifier's clock nor by the real one (go-msgauth
// checked the real clock; an expired signature costs no DNS query).
func (c *sigCheck) readTimes(now time.Time) bool {
	var t, x time.Time
	tv, hasT := c.tags.Get("t")
	xv, hasX := c.tags.Get("x")
	var err error
	if hasX {
		if x, err = parseUnixTime(xv); err != nil {
			c.decide(PermError, fmt.Sprintf("malformed x= (expiration): %v", err), fmt.Errorf("dkim: malformed x= (expiration): %w", err))
			return false
		}
	}
	if hasT {
		if t, err = parseUnixTime(tv); err != nil {
			c.decide(PermError, fmt.Sprintf("malformed t= (timestamp): %v", err), fmt.Errorf("dkim: malformed t= (timestamp): %w", err))
			return false
		}
	}
	if hasX && hasT && !x.After(t) {
		// RFC 6376 §3.5: x= MUST be greater than t=.
		c.perm("x= (expiration) is not after t= (timestamp)")
		return false
	}
	if hasX && (now.After(x) || time.Now().After(x)) {
		c.decide(Fail, "signature expired", errors.New("dkim: signature expired at "+x.UTC().Format(time.RFC3339)))
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if ascii.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// finish verifies the signature with its key: the key record and its
// fit with a=, c=, l=, then the body hash, then the signature over the
// selected header fields (RFC 6376 §6.1.2, §6.1.3).
func (c *sigCheck) finish(sc *scratch, idx *dkimcore.FieldIndex) {
	if c.decided {
		return
	}
	key := c.key(&sc.keys)
	if key == nil {
		return
	}
	c.testing = key.Testing
	if !c.suits(key) {
		return
	}
	decoded, err := dkimcore.DecodeBase64To(sc.decoded[:0], c.tagValue("bh"))
	if err != nil {
		c.decide(PermError, "malformed body hash: "+err.Error(), fmt.Errorf("dkim: malformed body hash: %w", err))
		return
	}
	n := len(decoded)
	decoded, err = dkimcore.DecodeBase64To(decoded, c.tagValue("b"))
	if err != nil {
		c.decide(PermError, "malformed signature: "+err.Error(), fmt.Errorf("dkim: malformed signature: %w", err))
		return
	}
	if cap(decoded) <= maxPooledCanon {
		sc.decoded = decoded[:0]
	}
	bh, b := decoded[:n], decoded[n:]
	if !dkimcore.Equal(c.body.Finish(), bh) {
		c.decide(Fail, "body hash did not verify", nil)
		return
	}
	if !c.headerVerifies(key, sc, idx, b) {
		c.decide(Fail, "signature did not verify", nil)
		return
	}
	if key.Strict && identifierDomain(c.identifier) != c.domain {
		c.perm("i= domain is not d= and the key demands it (t=s)")
		return
	}
	c.decided, c.status = true, Pass
}

func (c *sigCheck) tagValue(name string) string {
	v, _ := c.tags.Get(name)
	return v
}

// key returns the signature's key, or nil with the outcome decided: the
// DNS answer must hold exactly one TXT record, a usable key.
func (c *sigCheck) key(keys *keyCache) *dkimcore.PublicKey {
	recs, err := keys.get(c.keyName)
	switch {
	case err != nil && isTemporary(err):
		c.decide(TempError, "key unavailable: "+dnsErrorText(err), fmt.Errorf("dkim: key unavailable: %w", err))
		return nil
	case err != nil:
		c.decide(PermError, "no key for signature", fmt.Errorf("dkim: no key for signature: %w", err))
		return nil
	case len(recs) == 0:
		c.perm("no valid key found")
		return nil
	case len(recs) > 1:
		c.perm("multiple TXT records found for key")
		return nil
	}
	key, err := dkimcore.ParseKeyRecordParts(recs[0].TXT)
	if err != nil {
		c.decide(PermError, keyReason(err), fmt.Errorf("dkim: %s: %w", keyReason(err), err))
		return nil
	}
	return key
}

// keyReason words a key record problem as go-msgauth did.
func keyReason(err error) string {
	var ke *dkimcore.KeyError
	if !errors.As(err, &ke) {
		return "key syntax error: " + err.Error()
	}
	switch ke.Problem {
	case dkimcore.KeyTagList:
		return "key record error: " + ke.Err.Error()
	case dkimcore.KeyVersion:
		return "incompatible public key version"
	case dkimcore.KeyNoData:
		return "key syntax error: missing public key data"
	case dkimcore.KeyRevoked:
		return "key revoked"
	case dkimcore.KeyBase64:
		return "key syntax error: " + ke.Err.Error()
	case dkimcore.KeyNotRSA:
		return "key syntax error: not an RSA public key"
	case dkimcore.KeyRSASize:
		if ke.Bits < dkimcore.MinRSABits {
			return fmt.Sprintf("key is too short: want %d bits, has %d bits", dkimcore.MinRSABits, ke.Bits)
		}
		return fmt.Sprintf("key is too long: want %d bits at most, has %d bits", dkimcore.MaxRSABits, ke.Bits)
	case dkimcore.KeyEd25519Size:
		return fmt.Sprintf("invalid Ed25519 public key size: %d bytes", ke.Bits/8)
	case dkimcore.KeyUnknownType:
		return "unsupported key algorithm"
	}
	return "key syntax error: " + ke.Msg
}

// suits checks a=, the key's h= and s=, c= and l= (RFC 6376 §6.1.2,
// RFC 8301 §3.1): it returns false with the outcome decided when the
// signature cannot be verified with this key.
func (c *sigCheck) suits(key *dkimcore.PublicKey) bool {
	keyAlg, hashAlg, ok := strings.Cut(c.alg, "-")
	switch {
	case !ok:
		c.perm("malformed algorithm name")
	case !key.AllowsHash(hashAlg):
		c.perm("inappropriate hash algorithm")
	case hashAlg == "sha1":
		c.perm("hash algorithm too weak: sha1") // RFC 8301 §3.1
	case hashAlg != "sha256":
		c.perm("unsupported hash algorithm")
	case keyAlg != key.Type:
		c.perm("inappropriate key algorithm")
	case !key.AllowsEmail():
		c.perm("inappropriate service")
	case errors.Is(c.canonErr, dkimcore.ErrCanonHeader):
		c.perm("unsupported header canonicalization algorithm")
	case c.canonErr != nil:
		c.perm("unsupported body canonicalization algorithm")
	case c.hasLength:
		// l= leaves part of the body unsigned: refused as local policy
		// (RFC 6376 §8.2, RFC 8601 §2.7.1).
		c.decide(Policy, "body length limit (l=) not accepted", nil)
	default:
		return true
	}
	return false
}

// headerVerifies hashes the selected header fields and the signature
// field without its b= value, and checks b= over the digest.
func (c *sigCheck) headerVerifies(key *dkimcore.PublicKey, sc *scratch, idx *dkimcore.FieldIndex, sig []byte) bool {
	if *idx == nil && dkimcore.NeedsIndex(sc.fields, c.names) {
		*idx = dkimcore.IndexFields(sc.fields)
	}
	h := sc.hash
	h.Reset()
	buf := dkimcore.HashSelected(h, sc.canon[:0], sc.fields, *idx, c.names, c.relaxedHeader, c.field)
	bt := c.tags.Find("b")
	buf = dkimcore.CanonSigHeader(buf[:0], c.field, bt.Start, bt.End, c.relaxedHeader)
	h.Write(buf)
	if cap(buf) <= maxPooledCanon {
		sc.canon = buf[:0]
	}
	return dkimcore.VerifySignature(key, h.Sum(sc.sum[:0]), sig)
}

// maxPooledCanon bounds the canonical field buffer kept in the pool.
const maxPooledCanon = 64 << 10
