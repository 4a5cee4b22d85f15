package milter

import (
	"github.com/mailsidecar/sidecar/internal/authres"
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
		if !authres.Token(method) || !authres.Token(result) {
			continue
		}
		items := []string{method + "=" + result}
		if r.Comment != "" {
			items = append(items, authres.Comment(r.Comment))
		}
		if r.Reason != "" {
			items = append(items, "reason="+authres.Quote(r.Reason))
		}
		for _, p := range r.Props {
			if !authres.Token(p.Type) || !authres.Token(p.Name) {
				continue
			}
			items = append(items, strings.ToLower(p.Type)+"."+p.Name+"="+authres.PValue(p.Value))
		}
		infos = append(infos, items)
	}
	if len(infos) == 0 {
		infos = [][]string{{"none"}}
	}
	id := authres.Value(authservID)
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
