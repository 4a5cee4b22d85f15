package arc

import (
	"context"
	"crypto/sha256"
	"fmt"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// verifyError is why a signature did not verify. temp marks a DNS failure:
// the signature may be good, the key could not be fetched.
type verifyError struct {
	temp bool
	msg  string
}

func (e *verifyError) Error() string { return e.msg }

func permErr(format string, a ...any) *verifyError {
	return &verifyError{msg: fmt.Sprintf(format, a...)}
}

// sigParams are the tags common to the AMS and the AS, decoded and checked.
type sigParams struct {
	alg              string
	b                []byte
	bStart, bEnd     int
	domain, selector string
}

// commonParams decodes and checks a=, b=, d=, s= and t= (RFC 8617
// §4.1.2, §4.1.3, with the RFC 6376 §3.5 syntax).
func commonParams(sig *Signature) (*sigParams, *verifyError) {
	p := &sigParams{}
	tags := sig.tags
	a, ok := tags.Get("a")
	switch {
	case !ok:
		return nil, permErr("no a= tag")
	case dkimcore.KeyTypeOf(a) == "":
		return nil, permErr("unsupported algorithm a=%s", a)
	}
	p.alg = a
	bt := tags.Find("b")
	if bt == nil {
		return nil, permErr("no b= tag")
	}
	b, err := dkimcore.DecodeBase64(bt.Value)
	if err != nil || len(b) == 0 {
		return nil, permErr("b= is not a base64 signature")
	}
	p.b, p.bStart, p.bEnd = b, bt.Start, bt.End
	d, ok := tags.Get("d")
	if !ok || !validDomain(d) {
		return nil, permErr("missing or invalid d=")
	}
	s, ok := tags.Get("s")
	if !ok || !validSelector(s) {
		return nil, permErr("missing or invalid s=")
	}
	p.domain, p.selector = d, s
	if t, ok := tags.Get("t"); ok {
		if _, ok := parseDecimal(t); !ok {
			return nil, permErr("invalid t=")
		}
	}
	return p, nil
}

// validDomain checks a d= value: dot-separated labels of letters, digits,
// hyphens and underscores, each 1 to 63 octets, at most 253 in all.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if l := i - start; l == 0 || l > 63 {
				return false
			}
			start = i + 1
			continue
		}
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validSelector checks an s= value (RFC 6376 §3.1: a sub-domain).
func validSelector(s string) bool { return validDomain(s) }

// amsParams are the decoded tags of an ARC-Message-Signature.
type amsParams struct {
	sigParams
	bh            []byte
	headers       []string // lower case
	relaxedHeader bool
	canonGiven    bool // the AMS has a c= tag
	body          bodyKey
	expires       int64 // x=, or -1
}

// parseAMS decodes and checks the tags of an AMS (RFC 8617 §4.1.2: the
// DKIM-Signature tags without v=, with i= the instance).
func parseAMS(sig *Signature) (*amsParams, *verifyError) {
	cp, verr := commonParams(sig)
	if verr != nil {
		return nil, verr
	}
	p := &amsParams{sigParams: *cp, expires: -1}
	tags := sig.tags
	bh, ok := tags.Get("bh")
	if !ok {
		return nil, permErr("no bh= tag")
	}
	if p.bh, _ = dkimcore.DecodeBase64(bh); len(p.bh) != sha256.Size {
		return nil, permErr("bh= is not a base64 SHA-256 hash")
	}
	h, ok := tags.Get("h")
	if !ok {
		return nil, permErr("no h= tag")
	}
	for _, name := range splitHeaderList(h) {
		name = dkimcore.LowerName(name)
		if name == "arc-seal" {
			// RFC 8617 §4.1.2: ARC-Seal fields are never signed by an AMS.
			return nil, permErr("h= lists ARC-Seal")
		}
		p.headers = append(p.headers, name)
	}
	c, present := tags.Get("c")
	p.canonGiven = present
	var err error
	p.relaxedHeader, p.body.Relaxed, err = dkimcore.ParseCanon(c, present)
	if err != nil {
		return nil, permErr("%v", err)
	}
	p.body.Limit = -1
	if l, ok := tags.Get("l"); ok {
		if p.body.Limit, ok = parseDecimal(l); !ok {
			return nil, permErr("invalid l=")
		}
	}
	if x, ok := tags.Get("x"); ok {
		if p.expires, ok = parseDecimal(x); !ok {
			return nil, permErr("invalid x=")
		}
		if t, ok := tags.Get("t"); ok {
			if tv, _ := parseDecimal(t); tv > p.expires {
				return nil, permErr("x= is before t=")
			}
		}
	}
	return p, nil
}

// bodyKeyOf returns the body hash an AMS needs, if its tags parse.
func bodyKeyOf(sig *Signature) (bodyKey, bool) {
	c, present := sig.tags.Get("c")
	_, rb, err := dkimcore.ParseCanon(c, present)
	if err != nil {
		return bodyKey{}, false
	}
	k := bodyKey{Relaxed: rb, Limit: -1}
	if l, ok := sig.tags.Get("l"); ok {
		if k.Limit, ok = parseDecimal(l); !ok {
			return bodyKey{}, false
		}
	}
	return k, true
}

// verifier holds what verifying the signatures of one message needs.
type verifier struct {
	ctx    context.Context
	dns    resolver.Querier
	now    time.Time
	fields []field
	hs     *HeaderSet
	bodies map[bodyKey]*bodyHasher
	keys   keyCache
	buf    []byte
	// setCanon caches the canonical form of each complete ARC Set.
	setCanon [][]byte
	index    fieldIndex
}

// verifyAMS verifies the ARC-Message-Signature of one set: the body hash,
// then the signature over the fields named by h= and the AMS itself
// (RFC 6376 §6.1.3, as RFC 8617 §5.2 step 4 applies it).
func (v *verifier) verifyAMS(set *Set) *verifyError {
	p, verr := parseAMS(set.AMS)
	if verr != nil {
		return verr
	}
	if p.expires >= 0 && v.now.Unix() > p.expires {
		return permErr("signature expired (x=)")
	}
	bh := v.bodies[p.body]
	if bh == nil {
		return permErr("no body hash computed") // cannot happen: set up at the end of the header
	}
	if bh.Short() {
		return permErr("body shorter than l=")
	}
	if !dkimcore.Equal(bh.Finish(), p.bh) {
		return permErr("body hash mismatch")
	}
	key, kerr := v.key(&p.sigParams)
	if kerr != nil {
		return kerr
	}
	if v.index == nil && len(v.fields)*len(p.headers) > 4096 {
		v.index = dkimcore.IndexFields(v.fields)
	}
	if v.amsDigestVerifies(set, p, key, p.relaxedHeader) {
		return nil
	}
	if !p.canonGiven && v.amsDigestVerifies(set, p, key, true) {
		// No c= tag: RFC 6376 §3.5 makes it simple/simple, but the ARC
		// drafts, and signers written to them, canonicalise ARC header
		// fields relaxed. A signature that verifies that way was made by
		// the key's holder over these fields: accept it (the body hash
		// above was still checked as simple).
		return nil
	}
	return permErr("signature did not verify")
}

// amsDigestVerifies hashes the fields an AMS signs with the given header
// canonicalisation and checks the signature over them.
func (v *verifier) amsDigestVerifies(set *Set, p *amsParams, key *publicKey, relaxed bool) bool {
	h := sha256.New()
	v.buf = dkimcore.HashSelected(h, v.buf, v.fields, v.index, p.headers, relaxed, set.AMS.field)
	v.buf = dkimcore.CanonSigHeader(v.buf[:0], set.AMS.field, p.bStart, p.bEnd, relaxed)
	h.Write(v.buf)
	return dkimcore.VerifySignature(key, h.Sum(nil), p.b)
}

// verifyAS verifies the ARC-Seal of set k (1-based) over the ARC Sets 1 to
// k (RFC 8617 §5.1.1, §5.2 step 6).
func (v *verifier) verifyAS(k int) *verifyError {
	sig := v.hs.Sets[k-1].Seal
	p, verr := parseAS(sig)
	if verr != nil {
		return verr
	}
	key, kerr := v.key(p)
	if kerr != nil {
		return kerr
	}
	if v.setCanon == nil {
		v.setCanon = make([][]byte, len(v.hs.Sets))
	}
	digest := sealDigest(v.hs.Sets[:k], p.bStart, p.bEnd, &v.buf, v.setCanon)
	if !dkimcore.VerifySignature(key, digest, p.b) {
		return permErr("signature did not verify")
	}
	return nil
}

// parseAS decodes and checks the tags of an ARC-Seal (RFC 8617 §4.1.3).
func parseAS(sig *Signature) (*sigParams, *verifyError) {
	if _, ok := sig.tags.Get("h"); ok {
		return nil, permErr("ARC-Seal with an h= tag")
	}
	if _, ok := sig.tags.Get("cv"); !ok {
		return nil, permErr("no cv= tag")
	}
	return commonParams(sig)
}

// sealDigest hashes the scope of the seal of the last of sets: for each
// set in order, the relaxed AAR, AMS and AS, the last AS without its b=
// value and final CRLF (RFC 8617 §5.1.1). A cv=fail seal covers its own
// set only (§5.1.2): pass just that set. cache, when not nil, keeps the
// canonical form of each complete set by index: the seals of a chain
// cover the same older sets over and over.
func sealDigest(sets []Set, bStart, bEnd int, buf *[]byte, cache [][]byte) []byte {
	h := sha256.New()
	b := *buf
	last := len(sets) - 1
	for j := 0; j < last; j++ {
		if cache != nil && cache[j] != nil {
			h.Write(cache[j])
			continue
		}
		s := &sets[j]
		b = dkimcore.CanonHeader(b[:0], s.aar, true)
		b = dkimcore.CanonHeader(b, s.AMS.field, true)
		b = dkimcore.CanonHeader(b, s.Seal.field, true)
		h.Write(b)
		if cache != nil {
			cache[j] = append([]byte(nil), b...)
		}
	}
	s := &sets[last]
	b = dkimcore.CanonHeader(b[:0], s.aar, true)
	b = dkimcore.CanonHeader(b, s.AMS.field, true)
	b = dkimcore.CanonSigHeader(b, s.Seal.field, bStart, bEnd, true)
	h.Write(b)
	*buf = b
	return h.Sum(nil)
}

// key fetches the key of a signature and checks it suits the algorithm.
func (v *verifier) key(p *sigParams) (*publicKey, *verifyError) {
	key, kerr := lookupKey(v.ctx, v.dns, v.keys, p.selector, p.domain)
	if kerr != nil {
		return nil, &verifyError{temp: kerr.temp, msg: kerr.msg}
	}
	if key.Type != dkimcore.KeyTypeOf(p.alg) {
		return nil, permErr("key type %s does not match a=%s", key.Type, p.alg)
	}
	return key, nil
}
