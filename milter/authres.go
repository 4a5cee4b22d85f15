package milter

import (
	"strings"

	"github.com/mailsidecar/sidecar/acl"
)

// authResultsName is the header field of RFC 8601.
const authResultsName = "Authentication-Results"

// foldWidth is the column at which our headers are folded (RFC 5322 §2.1.1
// recommends 78).
const foldWidth = 78

// formatAuthResults returns the value of an Authentication-Results header
// (after "Authentication-Results:", starting with a space) carrying every
// result, or "none" when there are none (RFC 8601 §2.2). A header longer than
// 78 columns is folded with CRLF and a tab: each result starts a line, and
// a result too long for one line is folded between its properties.
func formatAuthResults(authservID string, results []acl.AuthResult) string {
	var infos [][]string // each result as its items: "method=result", reason, props
	for _, r := range results {
		method, result := strings.ToLower(r.Method), strings.ToLower(r.Result)
		if !isToken(method) || !isToken(result) {
			continue
		}
		items := []string{method + "=" + result}
		if r.Comment != "" {
			items = append(items, comment(r.Comment))
		}
		if r.Reason != "" {
			items = append(items, "reason="+quoteString(r.Reason))
		}
		for _, p := range r.Props {
			if !isToken(p.Type) || !isToken(p.Name) {
				continue
			}
			items = append(items, strings.ToLower(p.Type)+"."+p.Name+"="+propValue(p.Value))
		}
		infos = append(infos, items)
	}
	if len(infos) == 0 {
		infos = [][]string{{"none"}}
	}
	id := quoteValue(authservID)
	oneLine := len(authResultsName) + 1 + 1 + len(id) + 1
	for _, items := range infos {
		for _, it := range items {
			oneLine += 1 + len(it)
		}
		oneLine++ // ";"
	}
	var b strings.Builder
	b.WriteString(" " + id + ";")
	col := len(authResultsName) + 1 + 1 + len(id) + 1
	for i, items := range infos {
		if oneLine-1 <= foldWidth {
			b.WriteByte(' ')
			col++
		} else {
			b.WriteString("\r\n\t")
			col = 8
		}
		for j, it := range items {
			if j > 0 {
				if col+1+len(it) > foldWidth {
					b.WriteString("\r\n\t")
					col = 8
				} else {
					b.WriteByte(' ')
					col++
				}
			}
			b.WriteString(it)
			col += len(it)
		}
		if i < len(infos)-1 {
			b.WriteByte(';')
			col++
		}
	}
	return b.String()
}

// comment renders text as an RFC 5322 comment: parentheses and backslashes
// are quoted, control characters become spaces.
func comment(text string) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, c := range []byte(text) {
		switch {
		case c == '(' || c == ')' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
	return b.String()
}

// isToken reports whether s is an RFC 2045 token: printable ASCII without
// space and tspecials.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// quoteValue writes an RFC 2045 value: a token as it is, anything else as a
// quoted-string.
func quoteValue(s string) string {
	if isToken(s) {
		return s
	}
	return quoteString(s)
}

// propValue writes a pvalue (RFC 8601 §2.2): a token, an address or
// domain ([local-part] "@" domain) as it is, anything else quoted.
func propValue(s string) string {
	if isToken(s) || isAddrValue(s) {
		return s
	}
	return quoteString(s)
}

// isAddrValue reports whether s is dot-atom "@" domain or "@" domain.
func isAddrValue(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	return (local == "" || isDotAtom(local)) && isDotAtom(domain)
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || isAtext(c)) {
			return false
		}
	}
	return true
}

// isAtext is RFC 5322 atext (ASCII; UTF-8 octets are allowed as in RFC 6532).
func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 || c >= 0x80
}

// quoteString writes s as an RFC 5322 quoted-string; control characters
// become spaces.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// authservID returns the authserv-id of an Authentication-Results header
// value, or "" when there is none. It is tolerant: comments (nested, with
// escapes) and folding whitespace may come first, the id may be a
// quoted-string, and anything after it (a version, a comment, no ";") is
// ignored. Whatever a downstream reader might take as the authserv-id is
// what is returned; go-msgauth's authres.Parse fails on some of these.
func authservID(v string) string {
	i := skipCFWS(v, 0)
	if i >= len(v) {
		return ""
	}
	if v[i] == '"' {
		var b strings.Builder
		for i++; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					if v[i] != '\r' && v[i] != '\n' { // not a quoted-pair: dropped like other line breaks
						b.WriteByte(v[i])
					}
				}
			case '"':
				return b.String()
			case '\r', '\n':
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	j := i
	for j < len(v) && !strings.ContainsRune(" \t\r\n;()\"", rune(v[j])) {
		j++
	}
	return v[i:j]
}

// skipCFWS skips whitespace, line breaks and comments from i.
func skipCFWS(v string, i int) int {
	depth := 0
	for i < len(v) {
		c := v[i]
		switch {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		case depth > 0:
		default:
			return i
		}
		i++
	}
	return i
}

// sameAuthservID compares authserv-ids as host names: without case and
// without a final dot.
func sameAuthservID(a, b string) bool {
	a, b = strings.TrimSuffix(strings.TrimSpace(a), "."), strings.TrimSuffix(strings.TrimSpace(b), ".")
	return a != "" && strings.EqualFold(a, b)
}
