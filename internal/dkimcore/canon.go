package dkimcore

import (
	"errors"
	"fmt"
	"strings"
)

// Header canonicalisation (RFC 6376 §3.4.1 and §3.4.2).

// CanonHeader appends the canonical form of one header field to dst, with
// its final CRLF.
func CanonHeader(dst []byte, f *Field, relaxed bool) []byte {
	if !relaxed {
		return append(dst, f.Raw...)
	}
	return RelaxHeader(dst, f.LName, f.Value())
}

// RelaxHeader appends the relaxed form of a field: the name in lower case,
// a colon, the value unfolded with every run of WSP reduced to one SP and
// no WSP at either end, then CRLF.
func RelaxHeader(dst []byte, lname, value string) []byte {
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
		j := skipText(value, i+1)
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

// CanonSigHeader appends the canonical form of a signature field (a
// DKIM-Signature, an ARC-Message-Signature or an ARC-Seal) with the value
// of its b= tag deleted, the FWS around that value included, and without
// the final CRLF: the form in which a signature covers itself (RFC 6376
// §3.7, RFC 8617 §5.1.1). bStart and bEnd delimit the b= value span
// within the field value (Tag.Start, Tag.End).
func CanonSigHeader(dst []byte, f *Field, bStart, bEnd int, relaxed bool) []byte {
	v := f.Value()
	stripped := v[:bStart] + v[bEnd:]
	if relaxed {
		dst = RelaxHeader(dst, f.LName, stripped)
	} else {
		dst = append(dst, f.Raw[:f.Colon+1]...)
		dst = append(dst, stripped...)
		dst = append(dst, '\r', '\n')
	}
	return dst[:len(dst)-2]
}

// ErrCanonHeader and ErrCanonBody are a c= tag naming an unknown header or
// body canonicalisation.
var (
	ErrCanonHeader = errors.New("unsupported header canonicalization")
	ErrCanonBody   = errors.New("unsupported body canonicalization")
)

// ParseCanon parses c= (RFC 6376 §3.5): header/body, each simple or
// relaxed; the body part defaults to simple, the whole (present false) to
// simple/simple. The error wraps ErrCanonHeader or ErrCanonBody.
func ParseCanon(c string, present bool) (relaxedHeader, relaxedBody bool, err error) {
	if !present {
		return false, false, nil
	}
	h, b, slash := strings.Cut(c, "/")
	parse := func(s string) (relaxed, ok bool) {
		switch s {
		case "simple":
			return false, true
		case "relaxed":
			return true, true
		}
		return false, false
	}
	rh, ok := parse(h)
	if !ok {
		return false, false, fmt.Errorf("%w: c=%s", ErrCanonHeader, c)
	}
	if !slash {
		return rh, false, nil
	}
	rb, ok := parse(b)
	if !ok {
		return false, false, fmt.Errorf("%w: c=%s", ErrCanonBody, c)
	}
	return rh, rb, nil
}
