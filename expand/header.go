package expand

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"
)

// maxHeaderValue bounds the value of one header variable; longer values
// (all fields of that name together) are truncated.
const maxHeaderValue = 64 << 10

// headerPrefixes maps the prefixes of header variables to their kind,
// longest first so that "rheader_" is not read as "rh_".
var headerPrefixes = []struct {
	prefix string
	kind   headerKind
}{
	{"rheader_", hdrRaw},
	{"bheader_", hdrTrimmed},
	{"header_", hdrDecoded},
	{"rh_", hdrRaw},
	{"bh_", hdrTrimmed},
	{"h_", hdrDecoded},
}

// headerPrefix reports whether s starts with a header variable prefix and
// returns its kind and length.
func headerPrefix(s string) (headerKind, int) {
	for _, p := range headerPrefixes {
		if strings.HasPrefix(s, p.prefix) {
			return p.kind, len(p.prefix)
		}
	}
	return 0, 0
}

// isFieldNameChar reports whether c may appear in a header field name as
// written in a header variable: printable ASCII except the colon that
// ends it, and (to keep mistakes local) braces, "$" and backslash.
func isFieldNameChar(c byte) bool {
	return c > ' ' && c < 0x7f && c != ':' && c != '{' && c != '}' && c != '$' && c != '\\'
}

// headerValue builds the value of a header variable from the raw field
// values: $rh_ joins them with newlines unchanged; $bh_ trims white space
// from each; $h_ also unfolds continuation lines and decodes RFC 2047
// encoded-words. The result is at most maxHeaderValue bytes.
func headerValue(vals []string, kind headerKind) string {
	switch len(vals) {
	case 0:
		return ""
	case 1:
		if kind == hdrRaw {
			return truncateUTF8(vals[0], maxHeaderValue)
		}
	}
	var b strings.Builder
	for i, v := range vals {
		if b.Len() >= maxHeaderValue {
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		if len(v) > maxHeaderValue {
			v = v[:maxHeaderValue]
		}
		switch kind {
		case hdrRaw:
			b.WriteString(v)
		case hdrTrimmed:
			b.WriteString(strings.TrimSpace(v))
		case hdrDecoded:
			b.WriteString(strings.TrimSpace(decodeHeader(unfold(v))))
		}
	}
	return truncateUTF8(b.String(), maxHeaderValue)
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// unfold removes the line breaks of folded header lines (CRLF or LF
// followed by white space), keeping the white space.
func unfold(s string) string {
	if strings.IndexByte(s, '\n') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' && i+2 < len(s) && s[i+1] == '\n' && (s[i+2] == ' ' || s[i+2] == '\t') {
			i++
			continue
		}
		if c == '\n' && i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// decodeHeader decodes RFC 2047 encoded-words. UTF-8, ISO-8859-1,
// US-ASCII and Windows-1252 are converted; in other character sets the
// non-ASCII bytes become U+FFFD. Malformed words are left as they are.
func decodeHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// cp1252 maps bytes 0x80..0x9f of Windows-1252; the rest is ISO-8859-1.
var cp1252 = [32]rune{
	'€', '\ufffd', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\ufffd', 'Ž', '\ufffd',
	'\ufffd', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\ufffd', 'ž', 'Ÿ',
}

func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	in, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	win := charset == "windows-1252" || charset == "cp1252"
	out := make([]byte, 0, len(in))
	for _, c := range in {
		switch {
		case c < utf8.RuneSelf:
			out = append(out, c)
		case win && c < 0xa0:
			out = utf8.AppendRune(out, cp1252[c-0x80])
		case win:
			out = utf8.AppendRune(out, rune(c))
		default:
			out = utf8.AppendRune(out, utf8.RuneError)
		}
	}
	return bytes.NewReader(out), nil
}
