package authres

// The lexical pieces of a resinfo (RFC 8601 §2.2): tokens, pvalues,
// quoted-strings and comments.

import "strings"

// Token reports whether s is an RFC 2045 token: printable ASCII without
// space and tspecials.
func Token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the octets of a token.
var tokenByte = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, c)
	}
	return t
}()

// Address reports whether s is [dot-atom] "@" dot-atom: an address or
// "@domain", which a pvalue may hold unquoted.
func Address(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return false
	}
	return (at == 0 || dotAtom(s[:at])) && dotAtom(s[at+1:])
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '.' || atext(c)) {
			return false
		}
	}
	return true
}

// atext is RFC 5322 atext; UTF-8 octets are allowed as in RFC 6532.
func atext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 || c >= 0x80
}

// Value writes an RFC 2045 value: a token as it is, anything else as a
// quoted-string (the authserv-id, reason=).
func Value(s string) string {
	if Token(s) {
		return s
	}
	return Quote(s)
}

// PValue writes an RFC 8601 pvalue: a token or an address as it is,
// anything else as a quoted-string.
func PValue(s string) string {
	if Token(s) || Address(s) {
		return s
	}
	return Quote(s)
}

// appendPValue appends PValue(s).
func appendPValue(b []byte, s string) []byte {
	if Token(s) || Address(s) {
		return append(b, s...)
	}
	return appendWrap(b, '"', '"', s)
}

// Quote writes s as an RFC 5322 quoted-string; control characters become
// spaces, so the value cannot break the header.
func Quote(s string) string { return wrap('"', '"', s) }

// Comment writes s as an RFC 5322 comment, "(…)"; parentheses and
// backslashes are escaped, control characters become spaces.
func Comment(s string) string { return wrap('(', ')', s) }

func wrap(open, close byte, s string) string {
	return string(appendWrap(make([]byte, 0, len(s)+2), open, close, s))
}

// appendWrap appends s between open and close, with those two and the
// backslash escaped and control characters replaced by spaces.
func appendWrap(b []byte, open, close byte, s string) []byte {
	b = append(b, open)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == open || c == close:
			b = append(b, '\\', c)
		case c < ' ' || c == 0x7f:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return append(b, close)
}
