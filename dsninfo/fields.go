package dsninfo

import (
	"bytes"
	"strings"
)

// lineKind is what one line of a header-like block was.
type lineKind int

const (
	lineBlank lineKind = iota // empty (or white space only): the block's separator
	lineField                 // "Name: value"
	lineCont                  // a folded continuation
	lineOther                 // neither: the block ended without its blank line
)

// fieldReader reads header-like blocks (RFC 5322 §2.2: a message or part
// header, the groups of a delivery-status body) line by line, joining
// folded lines, each value capped at max bytes.
type fieldReader struct {
	max       int
	name      string
	val       []byte
	open      bool
	truncated bool
	emit      func(name, value string)
}

// line reads one line (without its line end) and says what it was. A
// field is emitted when the next field, a blank or other line, or flush
// ends it.
func (f *fieldReader) line(l []byte) lineKind {
	if len(bytes.TrimSpace(l)) == 0 {
		f.flush()
		return lineBlank
	}
	if l[0] == ' ' || l[0] == '\t' {
		if !f.open {
			return lineOther
		}
		f.add(l)
		return lineCont
	}
	i := bytes.IndexByte(l, ':')
	if i <= 0 || !fieldName(l[:i]) {
		f.flush()
		return lineOther
	}
	f.flush()
	f.name, f.open = strings.ToLower(string(bytes.TrimRight(l[:i], " \t"))), true
	f.val = f.val[:0]
	f.add(l[i+1:])
	return lineField
}

func (f *fieldReader) add(p []byte) {
	if len(f.val) >= f.max {
		f.truncated = f.truncated || len(p) > 0
		return
	}
	if len(f.val) > 0 {
		f.val = append(f.val, ' ')
		p = bytes.TrimLeft(p, " \t")
	}
	if room := f.max - len(f.val); len(p) > room {
		p = p[:max(room, 0)]
		f.truncated = true
	}
	f.val = append(f.val, p...)
}

// flush emits the open field.
func (f *fieldReader) flush() {
	if !f.open {
		return
	}
	f.open = false
	f.emit(f.name, clean(string(f.val)))
}

// fieldName reports whether b is a field name (RFC 5322 §3.6.8: printable
// ASCII but colon; white space before the colon tolerated).
func fieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// typed splits "type; value".
func typed(v string) Typed {
	t, rest, ok := strings.Cut(v, ";")
	if !ok || strings.ContainsAny(t, " \t<@") {
		return Typed{Value: strings.TrimSpace(v)}
	}
	return Typed{Type: strings.TrimSpace(t), Value: strings.TrimSpace(rest)}
}

// mediaType splits a Content-Type value into its lower-cased type and the
// parameters the parser needs (boundary, report-type), leniently: a
// malformed value gives what could be read.
func mediaType(v string) (mt string, params map[string]string) {
	parts := splitParams(v)
	if len(parts) == 0 {
		return "", nil
	}
	mt = strings.ToLower(strings.TrimSpace(parts[0]))
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = unquote(val[1 : len(val)-1])
		}
		if params == nil {
			params = map[string]string{}
		}
		if _, dup := params[k]; !dup {
			params[k] = val
		}
	}
	return mt, params
}

// splitParams splits at semicolons outside quoted strings.
func splitParams(v string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

func unquote(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
