package dkimcore

import (
	"bytes"
	"errors"
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// Field is one header field of a message. Raw is the field exactly as
// written, with every line break normalised to CRLF and a final CRLF, so
// that simple canonicalisation (RFC 6376 §3.4.1) hashes it unchanged.
type Field struct {
	Name  string // the field name as written, without WSP around it
	LName string // Name in ASCII lower case, for matching
	Raw   string // name, ":", value, CRLF
	Colon int    // index of the colon in Raw
}

// Value returns the field body: everything after the colon, without the
// final CRLF, folding kept.
func (f *Field) Value() string { return f.Raw[f.Colon+1 : len(f.Raw)-2] }

// ErrNoColon is a header line that is not a field: it has no colon.
var ErrNoColon = errors.New("header line without a colon")

// ErrFieldName is a field name outside RFC 5322 §3.6.8.
var ErrFieldName = errors.New("invalid header field name")

// NewField builds a Field from one complete header field as written,
// folded lines included, with or without its final line break. Bare LF
// line breaks become CRLF.
func NewField(b []byte) (Field, error) {
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		return Field{}, ErrNoColon
	}
	name := strings.TrimRight(string(b[:colon]), " \t")
	if !ValidFieldName(name) {
		return Field{}, ErrFieldName
	}
	return Field{Name: name, LName: LowerName(name), Raw: normaliseField(b), Colon: colon}, nil
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

// SplitMode says how SplitHeader treats the lines that RFC 5322 does not
// make fields.
type SplitMode int

const (
	// Strict drops a continuation line before any field and a field whose
	// name is not printable US-ASCII: no signature can cover them (ARC).
	Strict SplitMode = iota
	// Lenient keeps them as DKIM verifiers commonly do: a first line that
	// starts with white space is a field of its own (its name trimmed),
	// and any name before a colon is a name (DKIM).
	Lenient
)

// SplitHeader splits a message header block into fields. It stops at the
// first empty line (the end of the header) and accepts CRLF or bare LF line
// breaks. Lines without a colon are not fields and are skipped. Fields
// already in CRLF form share the memory of one copy of the header. The
// work is linear in len(hdr).
func SplitHeader(hdr []byte, mode SplitMode) []Field {
	return SplitHeaderString(string(hdr), mode)
}

// SplitHeaderString is SplitHeader without the copy: fields already in
// CRLF form share the memory of s.
func SplitHeaderString(s string, mode SplitMode) []Field {
	return SplitHeaderInto(make([]Field, 0, 24), s, mode)
}

// SplitHeaderInto is SplitHeaderString appending the fields to
// fields[:0], whose memory it reuses.
func SplitHeaderInto(fields []Field, s string, mode SplitMode) []Field {
	fields = fields[:0]
	start := -1 // start of the current field in s
	crlfOnly := true
	flush := func(end int) {
		if start < 0 {
			return
		}
		raw := s[start:end]
		start = -1
		colon := strings.IndexByte(raw, ':')
		if colon < 0 {
			return
		}
		name := trimWSPRight(raw[:colon])
		if mode == Lenient {
			name = TrimFWS(name)
		} else if !ValidFieldName(name) {
			return
		}
		if name == "" {
			return // RFC 5322 §2.2: a field name has one character at least
		}
		if !crlfOnly || !strings.HasSuffix(raw, "\r\n") {
			raw = normaliseField([]byte(raw))
			colon = strings.IndexByte(raw, ':') // a bare LF before it became CRLF
		}
		fields = append(fields, Field{Name: name, LName: LowerName(name), Raw: raw, Colon: colon})
	}
	pos := 0
	for pos < len(s) {
		end := len(s)
		if i := strings.IndexByte(s[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := s[pos:end]
		content := line
		for content != "" && (content[len(content)-1] == '\n' || content[len(content)-1] == '\r') {
			content = content[:len(content)-1]
		}
		if content == "" {
			break // the empty line that ends the header
		}
		if (content[0] == ' ' || content[0] == '\t') && (start >= 0 || mode == Strict) {
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

// trimWSPRight removes the SP and HTAB at the end of s.
func trimWSPRight(s string) string {
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// commonNames interns the lower-case form of frequent field names, so
// that lowering them does not allocate; it also maps their usual
// spellings ("Message-ID", "Message-Id", "DKIM-Signature") to it, so that
// lowering them is one lookup.
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
		for _, sp := range spellings(n) {
			commonNames[sp] = n
		}
	}
}

// acronyms are the words of field names usually written in capitals.
var acronyms = map[string]bool{"id": true, "mime": true, "dkim": true, "arc": true, "spf": true, "cc": true}

// spellings returns the usual spellings of a lower-case field name: each
// word capitalised, and with its acronyms in capitals.
func spellings(n string) []string {
	words := strings.Split(n, "-")
	title, caps := make([]string, len(words)), make([]string, len(words))
	for i, w := range words {
		title[i] = strings.ToUpper(w[:1]) + w[1:]
		caps[i] = title[i]
		if acronyms[w] {
			caps[i] = strings.ToUpper(w)
		}
	}
	return []string{strings.Join(title, "-"), strings.Join(caps, "-")}
}

// LowerName lower-cases a field name, without allocating for names
// already in lower case and for the common ones.
func LowerName(name string) string {
	// The names of nearly every signed header, without hashing them.
	switch name {
	case "from", "to", "subject", "date", "message-id", "dkim-signature", "cc", "mime-version", "content-type", "reply-to":
		return name
	case "From":
		return "from"
	case "To":
		return "to"
	case "Subject":
		return "subject"
	case "Date":
		return "date"
	case "Message-ID", "Message-Id":
		return "message-id"
	case "DKIM-Signature":
		return "dkim-signature"
	case "Cc":
		return "cc"
	case "MIME-Version", "Mime-Version":
		return "mime-version"
	case "Content-Type":
		return "content-type"
	case "Reply-To":
		return "reply-to"
	}
	if n, ok := commonNames[name]; ok {
		return n
	}
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

// ValidFieldName checks RFC 5322 §3.6.8: printable US-ASCII except colon.
func ValidFieldName(s string) bool {
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
