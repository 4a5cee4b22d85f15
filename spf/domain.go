package spf

import (
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// maxNameLen is the longest domain name in presentation form without the
// final dot (RFC 1035 §2.3.4: 255 octets on the wire).
const maxNameLen = 253

// trimDot removes one final dot.
func trimDot(s string) string {
	if n := len(s); n > 0 && s[n-1] == '.' {
		return s[:n-1]
	}
	return s
}

// validIdentityDomain reports whether d can be the <domain> argument of
// check_host() (§4.3): a multi-label name of at most 253 octets whose
// labels are 1 to 63 letters, digits, hyphens or underscores, and whose last
// label is not all-numeric (that would be an address, and "[...]" domain
// literals fail the character test). Otherwise the result is "none" and no
// DNS query is made.
func validIdentityDomain(d string) bool {
	d = trimDot(d)
	if d == "" || len(d) > maxNameLen {
		return false
	}
	labels := 0
	numeric := true
	for label := range strings.SplitSeq(d, ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		numeric = true
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case '0' <= c && c <= '9':
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-', c == '_':
				numeric = false
			default:
				return false
			}
		}
		labels++
	}
	return labels >= 2 && !numeric
}

// targetName turns the result of macro-expanding a domain-spec into a name
// to query (§4.8, §7.3): one final dot is dropped; a name longer than 253
// octets loses labels from the left until it fits. ok is false when no
// query can be composed from it (an empty label, a label over 63 octets,
// nothing left): such a target is treated as a name that does not exist.
func targetName(s string) (name string, ok bool) {
	s = trimDot(s)
	for len(s) > maxNameLen {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
	}
	if s == "" {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 {
			return "", false
		}
	}
	return s, true
}

// isToplabel reports whether s matches the toplabel rule of §7.1:
//
//	toplabel = ( *alphanum ALPHA *alphanum ) /
//	           ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
func isToplabel(s string) bool {
	if s == "" {
		return false
	}
	alpha, dash := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			alpha = true
		case '0' <= c && c <= '9':
		case c == '-':
			dash = true
		default:
			return false
		}
	}
	if dash {
		return s[0] != '-' && s[len(s)-1] != '-'
	}
	return alpha
}

// normalizeTarget turns a DNS target (MX exchange, PTR name) into the
// comparable form: lower case, no final dot.
func normalizeTarget(s string) string {
	return ascii.Lower(trimDot(s))
}
