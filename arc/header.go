package arc

import (
	"bytes"
	"errors"
	"strings"
)

// field is one header field of a message. raw is the field exactly as
// written, with every line break normalised to CRLF and a final CRLF, so
// that simple canonicalisation (RFC 6376 §3.4.1) can hash it unchanged.
type field struct {
	name  string // the field name as written, without WSP before the colon
	lname string // name in ASCII lower case, for matching
	raw   string // name, ":", value, CRLF
	colon int    // index of the colon in raw
}

// value returns the field body: everything after the colon, without the
// final CRLF, folding kept.
func (f *field) value() string { return f.raw[f.colon+1 : len(f.raw)-2] }

var errNoColon = errors.New("header line without a colon")

// newField builds a field from one complete header field as written,
// folded lines included, with or without its final line break. Bare LF
// line breaks become CRLF.
func newField(b []byte) (field, error) {
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		return field{}, errNoColon
	}
	name := strings.TrimRight(string(b[:colon]), " \t")
	if !validFieldName(name) {
		return field{}, errors.New("invalid header field name")
	}
	// Normalise the line breaks and add the final CRLF.
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	body := b
	for len(body) > 0 && (body[len(body)-1] == '\n' || body[len(body)-1] == '\r') {
		body = body[:len(body)-1]
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\n' && (i == 0 || body[i-1] != '\r') {
			sb.WriteByte('\r')
		}
		sb.WriteByte(c)
	}
	sb.WriteString("\r\n")
	raw := sb.String()
	return field{name: name, lname: asciiLower(name), raw: raw, colon: colon}, nil
}

// splitHeader splits a message header block into fields. It stops at the
// first empty line (the end of the header) and accepts CRLF or bare LF line
// breaks. Lines that are neither a field nor a continuation (no colon) are
// skipped: no signature can cover them. A continuation line before any
// field is skipped too.
func splitHeader(hdr []byte) []field {
	var fields []field
	var cur []byte
	flush := func() {
		if cur != nil {
			if f, err := newField(cur); err == nil {
				fields = append(fields, f)
			}
			cur = nil
		}
	}
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i+1], hdr[i+1:]
		} else {
			hdr = nil
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			break // the empty line that ends the header
		}
		if content[0] == ' ' || content[0] == '\t' {
			if cur != nil {
				cur = append(cur, line...)
			}
			continue
		}
		flush()
		cur = append([]byte(nil), line...)
	}
	flush()
	return fields
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// asciiEqualFold compares two strings ignoring ASCII case only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validFieldName checks RFC 5322 §3.6.8: printable US-ASCII except colon.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}
