package arc

import (
	"errors"
	"fmt"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"strconv"
)

// MaxInstances is the highest ARC instance number RFC 8617 allows (§4.2.1):
// a message with more ARC Sets fails validation (§5.2 step 1).
const MaxInstances = 50

// The three ARC header field names (RFC 8617 §4.1).
const (
	HeaderAAR  = "ARC-Authentication-Results"
	HeaderAMS  = "ARC-Message-Signature"
	HeaderSeal = "ARC-Seal"
)

type arcKind int

const (
	kindNone arcKind = iota
	kindAAR
	kindAMS
	kindAS
)

func kindOf(lname string) arcKind {
	switch lname {
	case "arc-authentication-results":
		return kindAAR
	case "arc-message-signature":
		return kindAMS
	case "arc-seal":
		return kindAS
	}
	return kindNone
}

func (k arcKind) String() string {
	switch k {
	case kindAAR:
		return HeaderAAR
	case kindAMS:
		return HeaderAMS
	case kindAS:
		return HeaderSeal
	}
	return "?"
}

// HeaderSet is the ARC header fields of a message grouped into ARC Sets.
type HeaderSet struct {
	// Sets holds one entry per instance number from 1 to the highest seen,
	// in order: Sets[k-1].Instance == k. When ParseHeaderSet returns an
	// error, members may be missing (nil) and Sets may stop early.
	Sets []Set

	// newestFailed is set when the newest ARC-Seal says cv=fail: the
	// chain has already failed and no further ARC Set is to be added
	// (RFC 8617 §5.2 step 2, §5.1.2).
	newestFailed bool
}

// Set is one ARC Set: the three header fields sharing an instance number.
type Set struct {
	Instance int
	// AAR is the ARC-Authentication-Results payload after "i=N;": the
	// authserv-id and the results, in Authentication-Results syntax
	// (RFC 8601), as written. Empty when the field is missing.
	AAR  string
	AMS  *Signature // the ARC-Message-Signature, nil when missing
	Seal *Signature // the ARC-Seal, nil when missing

	aar *field
}

// Signature is a parsed ARC-Message-Signature or ARC-Seal. The fields are
// the tag values as written; the signature's own validity is established
// only by verification.
type Signature struct {
	Instance  int
	Algorithm string   // a=
	Domain    string   // d=, the signing domain
	Selector  string   // s=
	CV        State    // cv= of an ARC-Seal; empty for an AMS
	Headers   []string // h= of an AMS, as listed
	Canon     string   // c= of an AMS as written; empty when absent
	Timestamp int64    // t=, or 0 when absent or invalid

	field *field
	tags  tagList
}

// ParseHeaderSet parses the ARC header fields found in a message header
// block (the bytes before the empty line; CRLF or LF line breaks) and
// checks the structure of the chain (RFC 8617 §5.2 steps 1 to 3): instance
// numbers from 1 to N with no gap or repetition, at most 50, exactly one
// of each of the three fields per instance, tag lists that parse, and cv=
// values of "none" for instance 1 and "pass" above it.
//
// A message without ARC header fields gives an empty HeaderSet and no
// error. An error describes why the chain fails; the HeaderSet returned
// with it holds what was collected until then.
func ParseHeaderSet(header []byte) (*HeaderSet, error) {
	return collectSets(dkimcore.SplitHeader(header, dkimcore.Strict), MaxInstances)
}

// collectSets groups the ARC fields of a message into sets and checks the
// chain structure, allowing instance numbers up to max.
func collectSets(fields []field, max int) (*HeaderSet, error) {
	hs := &HeaderSet{}
	count := 0
	for i := range fields {
		f := &fields[i]
		kind := kindOf(f.LName)
		if kind == kindNone {
			continue
		}
		count++
		if count > 3*max {
			// A hostile message: stop before parsing any more.
			return hs, fmt.Errorf("more than %d ARC header fields", 3*max)
		}
		inst, sig, aar, err := parseARCField(f, kind)
		if err != nil {
			return hs, fmt.Errorf("%s: %w", kind, err)
		}
		if inst < 1 || inst > max {
			return hs, fmt.Errorf("%s: instance i=%d outside 1 to %d", kind, inst, max)
		}
		for len(hs.Sets) < inst {
			hs.Sets = append(hs.Sets, Set{Instance: len(hs.Sets) + 1})
		}
		set := &hs.Sets[inst-1]
		dup := false
		switch kind {
		case kindAAR:
			dup = set.aar != nil
			set.aar, set.AAR = f, aar
		case kindAMS:
			dup = set.AMS != nil
			set.AMS = sig
		case kindAS:
			dup = set.Seal != nil
			set.Seal = sig
		}
		if dup {
			return hs, fmt.Errorf("i=%d: more than one %s", inst, kind)
		}
	}
	n := len(hs.Sets)
	if n == 0 {
		return hs, nil
	}
	// Step 2: a chain whose newest seal already says fail has failed.
	if s := hs.Sets[n-1].Seal; s != nil && s.CV == Fail {
		hs.newestFailed = true
		return hs, fmt.Errorf("i=%d: ARC-Seal says cv=fail", n)
	}
	// Step 3: structure.
	for k := range hs.Sets {
		set := &hs.Sets[k]
		switch {
		case set.aar == nil && set.AMS == nil && set.Seal == nil:
			return hs, fmt.Errorf("i=%d missing: instances must run from 1 to %d", k+1, n)
		case set.aar == nil:
			return hs, fmt.Errorf("i=%d: no %s", k+1, HeaderAAR)
		case set.AMS == nil:
			return hs, fmt.Errorf("i=%d: no %s", k+1, HeaderAMS)
		case set.Seal == nil:
			return hs, fmt.Errorf("i=%d: no %s", k+1, HeaderSeal)
		}
	}
	for k := range hs.Sets {
		cv := hs.Sets[k].Seal.CV
		switch {
		case cv == "":
			return hs, fmt.Errorf("i=%d: ARC-Seal without a valid cv=", k+1)
		case cv == Fail:
			return hs, fmt.Errorf("i=%d: ARC-Seal says cv=fail", k+1)
		case k == 0 && cv != None:
			return hs, fmt.Errorf("i=1: ARC-Seal says cv=%s, not none", cv)
		case k > 0 && cv != Pass:
			return hs, fmt.Errorf("i=%d: ARC-Seal says cv=%s, not pass", k+1, cv)
		}
	}
	return hs, nil
}

// parseARCField extracts the instance number of an ARC field and, for an
// AMS or AS, its tags; for an AAR, its payload.
func parseARCField(f *field, kind arcKind) (int, *Signature, string, error) {
	if kind == kindAAR {
		inst, payload, err := parseAARValue(f.Value())
		return inst, nil, payload, err
	}
	tags, err := dkimcore.ParseTagList(f.Value())
	if err != nil {
		return 0, nil, "", err
	}
	iv, ok := tags.Get("i")
	if !ok {
		return 0, nil, "", errors.New("no i= tag")
	}
	inst, ok := parseInstance(iv)
	if !ok {
		return 0, nil, "", fmt.Errorf("invalid i=%q", iv)
	}
	sig := &Signature{Instance: inst, field: f, tags: tags}
	sig.Algorithm, _ = tags.Get("a")
	sig.Domain, _ = tags.Get("d")
	sig.Selector, _ = tags.Get("s")
	if t, ok := tags.Get("t"); ok {
		sig.Timestamp, _ = parseDecimal(t)
	}
	if kind == kindAS {
		if cv, ok := tags.Get("cv"); ok {
			sig.CV, _ = ParseState(cv)
		}
	} else {
		sig.Canon, _ = tags.Get("c")
		if h, ok := tags.Get("h"); ok {
			sig.Headers = splitHeaderList(h)
		}
	}
	return inst, sig, "", nil
}

// parseInstance parses an instance number: decimal digits only.
func parseInstance(s string) (int, bool) {
	if s == "" || len(s) > 4 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseDecimal parses a non-negative decimal of at most 18 digits (t=, x=,
// l=; RFC 6376 allows 12 for times and 76 for lengths, a length that big
// is not a real one).
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// splitHeaderList splits an h= value at colons, dropping the FWS around
// each name. Empty names are kept: they select no field.
func splitHeaderList(h string) []string {
	var names []string
	start := 0
	for i := 0; i <= len(h); i++ {
		if i == len(h) || h[i] == ':' {
			names = append(names, dkimcore.TrimFWS(h[start:i]))
			start = i + 1
		}
	}
	return names
}

// parseAARValue parses the start of an ARC-Authentication-Results value,
//
//	arc-info = instance [CFWS] ";" authres-payload
//	instance = [CFWS] %s"i" [CFWS] "=" [CFWS] 1*DIGIT
//
// and returns the instance and the payload, trimmed.
func parseAARValue(v string) (int, string, error) {
	p := skipCFWS(v, 0)
	if p >= len(v) || v[p] != 'i' {
		return 0, "", errors.New("does not start with i=")
	}
	p = skipCFWS(v, p+1)
	if p >= len(v) || v[p] != '=' {
		return 0, "", errors.New("does not start with i=")
	}
	p = skipCFWS(v, p+1)
	start := p
	for p < len(v) && isDigit(v[p]) {
		p++
	}
	inst, ok := parseInstance(v[start:p])
	if !ok {
		return 0, "", fmt.Errorf("invalid i=%q", v[start:p])
	}
	p = skipCFWS(v, p)
	if p >= len(v) || v[p] != ';' {
		return 0, "", errors.New("no \";\" after the instance")
	}
	return inst, dkimcore.TrimFWS(v[p+1:]), nil
}

// skipCFWS skips whitespace and RFC 5322 comments (nested, with quoted
// pairs) from position p. An unterminated comment runs to the end.
func skipCFWS(s string, p int) int {
	depth := 0
	for p < len(s) {
		c := s[p]
		switch {
		case depth > 0 && c == '\\':
			p += 2
			continue
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0 || dkimcore.IsFWS(c):
		default:
			return p
		}
		p++
	}
	if p > len(s) {
		p = len(s)
	}
	return p
}
