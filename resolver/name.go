package resolver

import (
	"errors"
	"strings"
)

// Names and TXT strings cross this package in two forms. Callers see their
// bytes: a name is its labels joined by dots, each label any octets but a
// dot (RFC 2181 §11), and a TXT character-string is the octets of the
// record (RFC 1035 §3.3.14). miekg/dns holds both in presentation form,
// where a backslash escapes a special character (`\"`, `\\`, `\ `) or
// gives an octet in decimal (`\DDD`, RFC 1035 §5.1). The functions below
// convert at the boundary, so that `v=spf1 a:x\000` reaches SPF as the
// six octets and a NUL and `a b.example` is asked as a name with a space.

var (
	errEscape      = errors.New("bad escape")
	errDotInLabel  = errors.New("a label contains a dot")
	errEmptyString = errors.New("empty name")
)

// ParseName returns the octets of a domain name written in presentation
// format (`a\032b.example.`), without the trailing dot, as Query and
// Record use them. A label holding a dot (`a\.b`) cannot be written as
// octets joined by dots and is an error, as is a bad escape.
func ParseName(s string) (string, error) {
	if s == "" {
		return "", errEmptyString
	}
	if s == "." {
		return s, nil
	}
	if strings.IndexByte(s, '\\') < 0 {
		return strings.TrimSuffix(s, "."), nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		c, n, ok := unescape(s[i:])
		if !ok {
			return "", errEscape
		}
		if c == '.' {
			return "", errDotInLabel
		}
		b.WriteByte(c)
		i += n
	}
	return strings.TrimSuffix(b.String(), "."), nil
}

// FormatName writes a name of octets in presentation format, without a
// trailing dot: the octets that are special in a zone file are escaped
// with a backslash and the others outside printable ASCII as \DDD.
func FormatName(name string) string {
	if name == "." {
		return name
	}
	return escape(name, nameSpecial)
}

// wireName returns the normalised octets of a name miekg/dns decoded from
// a reply, and false for a name that has none (a dot inside a label).
func wireName(s string) (string, bool) {
	n, err := ParseName(s)
	if err != nil {
		return "", false
	}
	return NormalizeName(n), true
}

// decodeTXT returns the octets of a TXT character-string that miekg/dns
// holds in presentation form. A stray backslash (which miekg/dns never
// produces) stands for itself.
func decodeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			i++
			continue
		}
		c, n, ok := unescape(s[i:])
		if !ok {
			c, n = '\\', 1
		}
		b.WriteByte(c)
		i += n
	}
	return b.String()
}

// encodeTXT writes the octets of a TXT character-string in the
// presentation form miekg/dns packs and prints.
func encodeTXT(s string) string { return escape(s, txtSpecial) }

// unescape decodes the escape at the start of s (which begins with a
// backslash): `\DDD` with DDD at most 255, or `\c` for any other c. It
// returns the octet and the length of the escape.
func unescape(s string) (byte, int, bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	if !isDigit(s[1]) {
		return s[1], 2, true
	}
	if len(s) < 4 || !isDigit(s[2]) || !isDigit(s[3]) {
		return 0, 0, false
	}
	v := int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
	if v > 255 {
		return 0, 0, false
	}
	return byte(v), 4, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// The octets escaped with a backslash in names and in TXT strings; the
// dot is not among the name's, since it separates labels.
const (
	nameSpecial = "\\\"();@$ "
	txtSpecial  = "\\\""
)

// escape writes s with the octets of special escaped by a backslash and
// those outside printable ASCII as \DDD.
func escape(s, special string) string {
	plain := func(c byte) bool { return 0x20 <= c && c < 0x7f && strings.IndexByte(special, c) < 0 }
	i := 0
	for i < len(s) && plain(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case plain(c):
			b.WriteByte(c)
		case 0x20 <= c && c < 0x7f:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		}
	}
	return b.String()
}
