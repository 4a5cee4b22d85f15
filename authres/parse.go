package authres

import "strings"

// The parser is lenient, as a reader of fields written by other hosts
// must be: comments (nested, with escapes) and folding may appear
// anywhere, quoted-strings are kept whole, a resinfo that cannot be read
// is skipped, and nothing makes it fail. Its cost is linear in the
// length of the value.

// AuthservID returns the authserv-id of an Authentication-Results value,
// or "" when there is none. Comments and folding whitespace may come
// first, the id may be a quoted-string, and anything after it (a
// version, a comment, no ";") is ignored: whatever a downstream reader
// might take as the authserv-id is what is returned.
func AuthservID(v string) string {
	i := skipCFWS(v, 0)
	if i >= len(v) {
		return ""
	}
	if v[i] == '"' {
		_, id := readQuoted(v, i)
		return id
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

// SameAuthservID compares authserv-ids as host names: without ASCII case
// and without a final dot. An empty id matches nothing.
func SameAuthservID(a, b string) bool {
	a, b = strings.TrimSuffix(strings.TrimSpace(a), "."), strings.TrimSuffix(strings.TrimSpace(b), ".")
	return a != "" && strings.EqualFold(a, b)
}

// Split splits an Authentication-Results value at the semicolons outside
// comments and quoted-strings: the authserv-id part first, then each
// resinfo, as written (folding and comments kept).
func Split(v string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && (quoted || depth > 0):
			i++
		case quoted:
			if c == '"' {
				quoted = false
			}
		case c == '"' && depth == 0:
			quoted = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == ';' && depth == 0:
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:])
}

// Parse reads an Authentication-Results value: its authserv-id and its
// results. Method, result, ptype and property names are lower-cased;
// quoted values are unquoted; the first comment of a resinfo becomes its
// Comment; "none" and resinfos without "method=result" are skipped.
func Parse(v string) (authservID string, results []Result) {
	parts := Split(v)
	authservID = AuthservID(parts[0])
	for _, p := range parts[1:] {
		if r, ok := parseResinfo(p); ok {
			results = append(results, r)
		}
	}
	return authservID, results
}

// word is one lexical item of a resinfo: text outside comments, with
// quoted-strings unquoted.
type word struct {
	text   string
	quoted bool // the word was (or ended in) a quoted-string
}

// parseResinfo reads "method[/version]=result (comment) reason=… ptype.prop=value…".
func parseResinfo(s string) (Result, bool) {
	words, comment := lexResinfo(s)
	words = joinEquals(words)
	if len(words) == 0 {
		return Result{}, false
	}
	method, result, ok := strings.Cut(words[0].text, "=")
	method, _, _ = strings.Cut(method, "/") // a method version
	if !ok || method == "" || result == "" {
		return Result{}, false
	}
	r := Result{Method: strings.ToLower(method), Result: strings.ToLower(result), Comment: comment}
	for _, w := range words[1:] {
		name, value, ok := strings.Cut(w.text, "=")
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		if name == "reason" {
			r.Reason = value
			continue
		}
		ptype, prop, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		r.Props = append(r.Props, Prop{Type: ptype, Name: prop, Value: value})
	}
	return r, true
}

// lexResinfo splits s into words at whitespace outside quoted-strings,
// drops comments (returning the first one's text) and unquotes
// quoted-strings.
func lexResinfo(s string) (words []word, comment string) {
	var cur strings.Builder
	quotedWord, haveComment := false, false
	flush := func() {
		if cur.Len() > 0 || quotedWord {
			words = append(words, word{text: cur.String(), quoted: quotedWord})
		}
		cur.Reset()
		quotedWord = false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n':
			flush()
		case '(':
			flush()
			end, text := readComment(s, i)
			if !haveComment {
				comment, haveComment = text, true
			}
			i = end
		case '"':
			end, text := readQuoted(s, i)
			cur.WriteString(text)
			quotedWord = true
			i = end
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return words, strings.TrimSpace(comment)
}

// readComment reads the comment opening at s[i], nested comments and
// quoted-pairs included, and returns the index of its last byte and its
// text (without the outer parentheses, escapes resolved, folding
// reduced to spaces).
func readComment(s string, i int) (end int, text string) {
	var b strings.Builder
	depth := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			continue
		case c == '(':
			depth++
			if depth == 1 {
				continue
			}
		case c == ')':
			depth--
			if depth == 0 {
				return i, b.String()
			}
		case c == '\r' || c == '\n':
			continue
		case c == '\t':
			c = ' '
		}
		b.WriteByte(c)
	}
	return len(s) - 1, b.String()
}

// readQuoted reads the quoted-string opening at s[i] and returns the
// index of its closing quote and its content.
func readQuoted(s string, i int) (end int, text string) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\r' && s[i] != '\n' { // not a quoted-pair: dropped like other line breaks
					b.WriteByte(s[i])
				}
			}
		case '"':
			return i, b.String()
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return len(s) - 1, b.String()
}

// joinEquals joins "name = value", "name= value" and "name =value" into
// one word: RFC 8601 allows CFWS around "=".
func joinEquals(words []word) []word {
	out := words[:0]
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w.text == "=" && !w.quoted && len(out) > 0 && i+1 < len(words):
			out[len(out)-1].text += "=" + words[i+1].text
			i++
		case strings.HasPrefix(w.text, "=") && !w.quoted && len(out) > 0:
			out[len(out)-1].text += w.text
		case strings.HasSuffix(w.text, "=") && !w.quoted && i+1 < len(words) && (words[i+1].quoted || !strings.Contains(words[i+1].text, "=")):
			w.text += words[i+1].text
			out = append(out, w)
			i++
		default:
			out = append(out, w)
		}
	}
	return out
}
