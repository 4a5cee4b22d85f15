package arc

import (
	"bytes"
	"errors"
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
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
	return field{name: name, lname: lowerName(name), raw: normaliseField(b), colon: colon}, nil
}

// normaliseField returns the field with CRLF line breaks and a final CRLF.
func normaliseField(b []byte) string {
	body := b
	for len(body) > 0 && (body[len(body)-1] == '\n' || body[len(body)-1] == '\r') {
		body = body[:len(body)-1]
	}
	var sb strings.Builder
	sb.Grow(len(body) + 8)
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\n' && (i == 0 || body[i-1] != '\r') {
			sb.WriteByte('\r')
		}
		sb.WriteByte(c)
	}
	sb.WriteString("\r\n")
	return sb.String()
}

// splitHeader splits a message header block into fields. It stops at the
// first empty line (the end of the header) and accepts CRLF or bare LF line
// breaks. Lines that are neither a field nor a continuation (no colon) are
// skipped: no signature can cover them. A continuation line before any
// field is skipped too. Fields already in CRLF form share the memory of
// one copy of the header.
func splitHeader(hdr []byte) []field {
	s := string(hdr)
	fields := make([]field, 0, 24)
	start := -1 // start of the current field in s
	crlfOnly := true
	flush := func(end int) {
		if start < 0 {
			return
		}
		raw := s[start:end]
		colon := strings.IndexByte(raw, ':')
		if colon >= 0 {
			name := strings.TrimRight(raw[:colon], " \t")
			if validFieldName(name) {
				if !crlfOnly || !strings.HasSuffix(raw, "\r\n") {
					raw = normaliseField([]byte(raw))
				}
				fields = append(fields, field{name: name, lname: lowerName(name), raw: raw, colon: colon})
			}
		}
		start = -1
	}
	pos := 0
	for pos < len(s) {
		end := len(s)
		if i := strings.IndexByte(s[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := s[pos:end]
		content := strings.TrimRight(line, "\r\n")
		if content == "" {
			break // the empty line that ends the header
		}
		if content[0] == ' ' || content[0] == '\t' {
			crlfOnly = crlfOnly && strings.HasSuffix(line, "\r\n")
		} else {
			flush(pos)
			start, crlfOnly = pos, strings.HasSuffix(line, "\r\n")
		}
		pos = end
	}
	flush(pos)
	return fields
}

// commonNames interns the lower-case form of frequent field names, so
// that lowering them does not allocate.
var commonNames = map[string]string{}

func init() {
	for _, n := range []string{
		"from", "to", "cc", "subject", "date", "message-id", "mime-version",
		"content-type", "content-transfer-encoding", "received", "return-path",
		"reply-to", "sender", "references", "in-reply-to", "dkim-signature",
		"authentication-results", "arc-seal", "arc-message-signature",
		"arc-authentication-results", "list-id", "list-unsubscribe",
		"list-unsubscribe-post", "list-post", "list-help", "list-subscribe",
		"list-owner", "list-archive", "x-mailer", "user-agent",
		"received-spf", "delivered-to", "x-received", "precedence",
		"content-disposition", "thread-index", "thread-topic",
	} {
		commonNames[n] = n
	}
}

// lowerName lower-cases a field name, without allocating for names
// already in lower case and for the common ones.
func lowerName(name string) string {
	upper := false
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			upper = true
			break
		}
	}
	if !upper {
		return name
	}
	var buf [40]byte
	if len(name) <= len(buf) {
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		if n, ok := commonNames[string(buf[:len(name)])]; ok {
			return n
		}
	}
	return ascii.Lower(name)
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
