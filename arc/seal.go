package arc

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/resolver"
)

// DefaultHeaders is the h= list of an ARC-Message-Signature when
// Signer.Headers is nil: the fields that carry the message's meaning,
// mailing-list fields, and the DKIM signatures already present (RFC 8617
// §4.1.2 recommends signing those).
var DefaultHeaders = []string{
	"from", "reply-to", "subject", "date", "to", "cc",
	"resent-date", "resent-from", "resent-to", "resent-cc",
	"in-reply-to", "references", "message-id",
	"mime-version", "content-type", "content-transfer-encoding",
	"list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post",
	"list-subscribe", "list-post", "list-owner", "list-archive",
	"dkim-signature",
}

// Errors Seal returns when no ARC Set is to be added.
var (
	// ErrChainFailed: the newest ARC-Seal already says cv=fail, so the
	// chain is dead and adding to it helps nobody (RFC 8617 §5.2 step 2;
	// the ValiMail suite's no_additional_sig case).
	ErrChainFailed = errors.New("arc: the newest ARC-Seal says cv=fail: no ARC Set added")
	// ErrTooManyInstances: the message already has 50 ARC Sets.
	ErrTooManyInstances = errors.New("arc: the chain already has 50 instances")
)

// sealBodyKey is the body hash of the AMS that Seal writes: relaxed, whole.
var sealBodyKey = bodyKey{Relaxed: true, Limit: -1}

// Signer adds an ARC Set to messages (RFC 8617 §5.1): an
// ARC-Authentication-Results, an ARC-Message-Signature (c=relaxed/relaxed)
// and an ARC-Seal, with the same domain, selector and key for both
// signatures. A Signer is safe for concurrent use.
type Signer struct {
	Domain   string // d=
	Selector string // s=: the key is at Selector._domainkey.Domain
	// Key is an *rsa.PrivateKey (a=rsa-sha256, at least 1024 bits) or an
	// ed25519.PrivateKey (a=ed25519-sha256, RFC 8463), or any
	// crypto.Signer with such a public key.
	Key crypto.Signer
	// Headers are the field names the ARC-Message-Signature covers; nil
	// means DefaultHeaders. Names are matched ignoring case, and a name
	// given twice counts once. Each is listed in h= once for every field
	// of that name in the message, so all of them are signed, and not at
	// all when there is none; a name written "+name" is listed once more
	// (oversigned), so that adding such a field later breaks the
	// signature. ARC-Seal cannot be signed.
	Headers []string
	// Now gives t=; nil means time.Now.
	Now func() time.Time

	amsCTag string // tests only: see cTag
}

// Seal returns the ARC Set to add to msg (a whole message, CRLF or LF line
// breaks) as three complete header fields, folded with CRLF and a tab and
// without a final line break, in the order they go at the top of the
// message: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results.
// (A milter inserts them at header positions 0, 1 and 2.)
//
// chain is the result of validating msg; its State becomes the seal's cv=.
// authResults is the payload of the new ARC-Authentication-Results, in
// Authentication-Results syntax: the authserv-id and this host's results
// ("mx.example.net; spf=pass smtp.mailfrom=…; arc=pass"), without "i=";
// AuthResultsFor builds one from a message's Authentication-Results.
//
// Seal adds nothing and returns ErrChainFailed when the newest seal
// already says cv=fail, ErrTooManyInstances at 50 instances, and an error
// wrapping resolver.ErrTemporary when chain.Temp is set: sealing that
// chain as failed would break it for good over a passing DNS problem.
func (s *Signer) Seal(msg []byte, chain *Chain, authResults string) ([]string, error) {
	hdr, body := splitMessage(msg)
	bh := dkimcore.NewBodyHasher(sealBodyKey)
	bh.Write(body)
	return s.seal(dkimcore.SplitHeader(hdr, dkimcore.Strict), bh.Finish(), chain, authResults)
}

// SealStream is Seal for a message validated through a Stream on which
// HashForSealing was called before the body, and then Finish. It uses the
// stream's header fields, body hash and chain.
func (s *Signer) SealStream(st *Stream, authResults string) ([]string, error) {
	chain := st.chain
	if chain == nil {
		return nil, errors.New("arc: SealStream before Stream.Finish")
	}
	bh := st.bodies[sealBodyKey]
	if bh == nil {
		return nil, errors.New("arc: SealStream needs HashForSealing before the body")
	}
	return s.seal(st.fields, bh.Finish(), chain, authResults)
}

// splitMessage splits a message at the empty line ending the header.
func splitMessage(msg []byte) (hdr, body []byte) {
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			return msg, nil
		}
		line := msg[i : i+j+1]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return msg[:i], msg[i+len(line):]
		}
		i += j + 1
	}
	return msg, nil
}

// cTag is the c= value of our AMSs. amsCTag, set by tests only, writes
// another value ("-": none) over the same relaxed hashing, as signers
// written to the ARC drafts did.
func (s *Signer) cTag() string {
	if s.amsCTag == "" {
		return "relaxed/relaxed"
	}
	return s.amsCTag
}

func (s *Signer) algorithm() (string, error) {
	if s.Key == nil {
		return "", errors.New("arc: Signer has no key")
	}
	switch pub := s.Key.Public().(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < dkimcore.MinRSABits {
			return "", fmt.Errorf("arc: RSA key of %d bits; at least %d needed", pub.N.BitLen(), dkimcore.MinRSABits)
		}
		return dkimcore.AlgRSASHA256, nil
	case ed25519.PublicKey:
		return dkimcore.AlgEd25519SHA256, nil
	}
	return "", fmt.Errorf("arc: unsupported key type %T", s.Key.Public())
}

func (s *Signer) sign(digest []byte) ([]byte, error) {
	if _, ok := s.Key.Public().(ed25519.PublicKey); ok {
		return s.Key.Sign(nil, digest, crypto.Hash(0))
	}
	return s.Key.Sign(rand.Reader, digest, crypto.SHA256)
}

func (s *Signer) seal(fields []field, bodyHash []byte, chain *Chain, authResults string) ([]string, error) {
	alg, err := s.algorithm()
	if err != nil {
		return nil, err
	}
	if !validDomain(s.Domain) || !validSelector(s.Selector) {
		return nil, fmt.Errorf("arc: invalid signing domain %q or selector %q", s.Domain, s.Selector)
	}
	if chain == nil {
		return nil, errors.New("arc: Seal needs the chain validation result")
	}
	if chain.Temp {
		return nil, fmt.Errorf("arc: chain validation hit a temporary DNS failure, not sealing: %w", resolver.ErrTemporary)
	}
	payload := formatAAR(authResults)
	if payload == "" {
		return nil, errors.New("arc: empty Authentication-Results payload")
	}
	hs, hsErr := collectSets(fields, MaxInstances)
	if hs.newestFailed || chain.newestFailed {
		return nil, ErrChainFailed
	}
	n := len(hs.Sets)
	cv := chain.State
	switch {
	case cv == Pass && (hsErr != nil || n != len(chain.Instances)),
		cv == None && n != 0,
		!cv.Valid():
		return nil, fmt.Errorf("arc: the chain result (%s, %d instances) does not match the message (%d)", cv, len(chain.Instances), n)
	}
	inst := n + 1
	if inst > MaxInstances {
		return nil, ErrTooManyInstances
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := strconv.FormatInt(now().Unix(), 10)
	is := strconv.Itoa(inst)

	// ARC-Authentication-Results.
	aar, err := dkimcore.NewField([]byte(HeaderAAR + ": i=" + is + "; " + payload))
	if err != nil {
		return nil, err
	}

	// ARC-Message-Signature, over the message as it will be with the new
	// AAR at the top.
	view := make([]field, 0, len(fields)+1)
	view = append(view, aar)
	view = append(view, fields...)
	names, err := s.headerList(view)
	if err != nil {
		return nil, err
	}
	amsTags := []tagv{
		{"a", alg}, {"b", ""}, {"bh", base64.StdEncoding.EncodeToString(bodyHash)},
		{"c", s.cTag()}, {"d", s.Domain}, {"h", strings.Join(names, ":")},
		{"i", is}, {"s", s.Selector}, {"t", t},
	}
	if s.amsCTag == "-" {
		amsTags = slices.DeleteFunc(amsTags, func(t tagv) bool { return t.name == "c" })
	}
	amsText := formatSig(HeaderAMS, amsTags)
	ams, bs, be, err := sigField(amsText)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var buf []byte
	buf = dkimcore.HashSelected(h, buf, view, nil, names, true, nil)
	buf = dkimcore.CanonSigHeader(buf[:0], &ams, bs, be, true)
	h.Write(buf)
	sig, err := s.sign(h.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("arc: signing the ARC-Message-Signature: %w", err)
	}
	amsText = insertSig(amsText, ams.Colon+1+bs, sig)
	if ams, _, _, err = sigField(amsText); err != nil {
		return nil, err
	}

	// ARC-Seal, over the ARC Sets 1 to N and the new one; over the new
	// one alone when cv=fail (RFC 8617 §5.1.2).
	asText := formatSig(HeaderSeal, []tagv{
		{"a", alg}, {"b", ""}, {"cv", string(cv)}, {"d", s.Domain},
		{"i", is}, {"s", s.Selector}, {"t", t},
	})
	as, bs, be, err := sigField(asText)
	if err != nil {
		return nil, err
	}
	sets := make([]Set, 0, inst)
	if cv != Fail {
		sets = append(sets, hs.Sets...)
	}
	sets = append(sets, Set{Instance: inst, aar: &aar, AMS: &Signature{field: &ams}, Seal: &Signature{field: &as}})
	sig, err = s.sign(sealDigest(sets, bs, be, &buf, nil))
	if err != nil {
		return nil, fmt.Errorf("arc: signing the ARC-Seal: %w", err)
	}
	asText = insertSig(asText, as.Colon+1+bs, sig)
	return []string{asText, amsText, strings.TrimSuffix(aar.Raw, "\r\n")}, nil
}

// headerList expands the configured names into the h= list for view.
func (s *Signer) headerList(view []field) ([]string, error) {
	cfg := s.Headers
	if cfg == nil {
		cfg = DefaultHeaders
	}
	present := make(map[string]int, len(view))
	for i := range view {
		present[view[i].LName]++
	}
	var order []string
	over := map[string]bool{}
	for _, name := range cfg {
		plus := strings.HasPrefix(name, "+")
		name = ascii.Lower(strings.TrimSpace(strings.TrimPrefix(name, "+")))
		if name == "" {
			continue
		}
		if name == "arc-seal" || !dkimcore.ValidFieldName(name) {
			return nil, fmt.Errorf("arc: cannot sign header field %q", name)
		}
		if _, seen := over[name]; !seen {
			order = append(order, name)
		}
		over[name] = over[name] || plus
	}
	var names []string
	for _, name := range order {
		count := present[name]
		if over[name] {
			count++
		}
		for ; count > 0; count-- {
			names = append(names, name)
		}
	}
	return names, nil
}

// sigField parses a formatted signature field and locates its b= value.
func sigField(text string) (field, int, int, error) {
	f, err := dkimcore.NewField([]byte(text))
	if err != nil {
		return field{}, 0, 0, err
	}
	tags, err := dkimcore.ParseTagList(f.Value())
	if err != nil {
		return field{}, 0, 0, fmt.Errorf("arc: formatting a signature: %w", err)
	}
	b := tags.Find("b")
	if b == nil {
		return field{}, 0, 0, errors.New("arc: formatting a signature: no b=")
	}
	return f, b.Start, b.End, nil
}

// insertSig puts the base64 signature, folded, at offset off of text
// (just after "b=").
func insertSig(text string, off int, sig []byte) string {
	enc := base64.StdEncoding.EncodeToString(sig)
	var sb strings.Builder
	sb.WriteString(text[:off])
	for len(enc) > 72 {
		sb.WriteString(enc[:72])
		sb.WriteString("\r\n\t  ")
		enc = enc[72:]
	}
	sb.WriteString(enc)
	sb.WriteString(text[off:])
	return sb.String()
}

type tagv struct{ name, value string }

// foldWidth is the line length folding aims at (RFC 5322 §2.1.1 asks for
// 78 at most).
const foldWidth = 76

// formatSig lays out a signature field: "Name: a=…; b=;" with b= on a
// line of its own, the tags after it folded to foldWidth, and an h= list
// folded after a colon when long. The layout does not depend on the
// signature, which insertSig adds afterwards.
func formatSig(name string, tags []tagv) string {
	var sb strings.Builder
	sb.WriteString(name)
	sb.WriteString(":")
	col := len(name) + 1
	newline := false
	for i, t := range tags {
		if i > 0 {
			sb.WriteString(";")
			col++
		}
		piece := t.name + "=" + t.value
		if t.name == "b" || newline || col+1+len(piece) > foldWidth {
			sb.WriteString("\r\n\t")
			col = 8
		} else {
			sb.WriteString(" ")
			col++
		}
		newline = t.name == "b"
		if t.name == "h" && col+len(piece) > foldWidth {
			sb.WriteString("h=")
			col += 2
			for j, n := range strings.Split(t.value, ":") {
				if j > 0 {
					sb.WriteString(":")
					col++
				}
				if j > 0 && col+len(n) > foldWidth {
					sb.WriteString("\r\n\t ")
					col = 9
				}
				sb.WriteString(n)
				col += len(n)
			}
			continue
		}
		sb.WriteString(piece)
		col += len(piece)
	}
	return sb.String()
}

// formatAAR tidies an Authentication-Results payload for the new AAR: the
// authserv-id and each result on its own line, whitespace runs outside
// quoted strings reduced to one space, empty elements dropped.
func formatAAR(payload string) string {
	parts := authres.Split(payload)
	var kept []string
	for _, p := range parts {
		if p = collapseWSP(p); p != "" {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	if len(kept) == 1 {
		return kept[0] + "; none"
	}
	one := strings.Join(kept, "; ")
	if len(one)+len(HeaderAAR)+8 <= foldWidth {
		return one
	}
	return kept[0] + ";\r\n\t" + strings.Join(kept[1:], ";\r\n\t")
}

// collapseWSP trims s and reduces runs of whitespace (line breaks
// included) outside quoted strings to one space.
func collapseWSP(s string) string {
	s = dkimcore.TrimFWS(s)
	var sb strings.Builder
	quoted, space := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !quoted && dkimcore.IsFWS(c) {
			space = true
			continue
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			sb.WriteByte(c)
			i++
			c = s[i]
		case c == '"':
			quoted = !quoted
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// AuthResultsFor gathers, in order, the results of every
// Authentication-Results field of msg whose authserv-id is authservID
// (ASCII case ignored) into one payload for a new
// ARC-Authentication-Results: "authservID; result; result…", as the
// ValiMail suite's signing cases consolidate them. ok is false when no
// such field exists.
func AuthResultsFor(msg []byte, authservID string) (payload string, ok bool) {
	hdr, _ := splitMessage(msg)
	var results []string
	for _, f := range dkimcore.SplitHeader(hdr, dkimcore.Strict) {
		if f.LName != "authentication-results" {
			continue
		}
		parts := authres.Split(f.Value())
		if !ascii.EqualFold(authres.AuthservID(parts[0]), authservID) {
			continue
		}
		ok = true
		for _, r := range parts[1:] {
			if r = collapseWSP(r); r != "" && !ascii.EqualFold(r, "none") {
				results = append(results, r)
			}
		}
	}
	if !ok {
		return "", false
	}
	if len(results) == 0 {
		return authservID + "; none", true
	}
	return authservID + "; " + strings.Join(results, "; "), true
}
