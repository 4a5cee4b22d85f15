package authres

import "strings"

// Result is one resinfo of an Authentication-Results field (RFC 8601
// §2.2): "method=result (comment) reason="…" ptype.property=value …".
type Result struct {
	Method  string // "spf", "dkim", "dmarc", "arc", "iprev", "auth"
	Result  string // "pass", "fail", … (RFC 8601 §2.7)
	Comment string // written in parentheses after the result: dmarc=fail (p=reject dis=none)
	Reason  string // written as reason="…"
	Props   []Prop
}

// Prop is a ptype.property=value item such as smtp.mailfrom=example.com.
type Prop struct {
	Type  string // "smtp", "header", "body", "policy"
	Name  string
	Value string
}

// P returns the property ptype.name=value.
func P(ptype, name, value string) Prop { return Prop{Type: ptype, Name: name, Value: value} }

// Prop returns the value of the property "ptype.name" (ASCII case
// ignored) and whether the result has it.
func (r Result) Prop(ptype, name string) (string, bool) {
	for _, p := range r.Props {
		if strings.EqualFold(p.Type, ptype) && strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// items returns the resinfo as its items ("method=result", the comment,
// reason=, each property), ready to be joined by spaces or folded; ok is
// false when method or result is not a token (such a result is not
// written). Methods, results and ptypes are lower-cased; property values
// that are neither tokens nor addresses are quoted.
func (r Result) items() (items []string, ok bool) {
	method, result := strings.ToLower(r.Method), strings.ToLower(r.Result)
	if !Token(method) || !Token(result) {
		return nil, false
	}
	items = make([]string, 0, 3+len(r.Props))
	items = append(items, method+"="+result)
	if r.Comment != "" {
		items = append(items, Comment(r.Comment))
	}
	if r.Reason != "" {
		items = append(items, "reason="+Quote(r.Reason))
	}
	for _, p := range r.Props {
		if !Token(p.Type) || !Token(p.Name) {
			continue
		}
		items = append(items, strings.ToLower(p.Type)+"."+p.Name+"="+PValue(p.Value))
	}
	return items, true
}

// String renders the resinfo on one line, as it appears in the header
// field: "dkim=fail (body hash did not verify) header.d=example.com". It
// is "" when the method or the result is not a token.
func (r Result) String() string {
	b, _ := r.appendTo(make([]byte, 0, 64))
	return bufString(b)
}

// appendTo appends String's text to b; ok is false, and nothing is
// appended, when the method or the result is not a token.
func (r Result) appendTo(b []byte) (_ []byte, ok bool) {
	method, result := lowerToken(r.Method), lowerToken(r.Result)
	if !Token(method) || !Token(result) {
		return b, false
	}
	b = append(append(append(b, method...), '='), result...)
	if r.Comment != "" {
		b = appendWrap(append(b, ' '), '(', ')', r.Comment)
	}
	if r.Reason != "" {
		b = appendWrap(append(b, " reason="...), '"', '"', r.Reason)
	}
	for _, p := range r.Props {
		if !Token(p.Type) || !Token(p.Name) {
			continue
		}
		b = appendLowerASCII(append(b, ' '), p.Type)
		b = append(append(append(b, '.'), p.Name...), '=')
		b = appendPValue(b, p.Value)
	}
	return b, true
}

// lowerToken is strings.ToLower without a copy for a token already in
// lower case, the usual method and result.
func lowerToken(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// appendLowerASCII appends s, a token, in lower case.
func appendLowerASCII(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// MaxReason bounds a reason or comment built from text that the outside
// controls (an SPF explanation, a verifier's error).
const MaxReason = 200

// ReasonText makes s fit for a reason or comment: control characters and
// non-ASCII octets become '?', and text beyond MaxReason is cut with
// "...".
func ReasonText(s string) string {
	clean := len(s) <= MaxReason
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= 0x20 && s[i] < 0x7f
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	if len(b) > MaxReason {
		return string(b[:MaxReason-3]) + "..."
	}
	return string(b)
}
