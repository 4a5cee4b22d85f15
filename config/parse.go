package config

import (
	"strings"
)

// MaxFileSize bounds the size of a configuration file.
const MaxFileSize = 4 << 20

// logical is one logical line: physical lines joined by trailing
// backslashes, with the position of each piece.
type logical struct {
	text string
	pos  Pos // of text[0]
	segs []segment
}

func (l logical) value(i int) Value {
	// The value starts at byte i of the logical line; trim both ends.
	j := len(l.text)
	for i < j && isSpace(l.text[i]) {
		i++
	}
	for j > i && isSpace(l.text[j-1]) {
		j--
	}
	v := Value{Text: l.text, Pos: l.pos, segs: l.segs}
	return v.Slice(i, j)
}

func (l logical) posAt(i int) Pos { return Value{Text: l.text, Pos: l.pos, segs: l.segs}.PosAt(i) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// splitLogical turns source text into logical lines, dropping blank lines
// and comment lines (first non-blank character '#'). A line ending in a
// backslash continues on the next line, whose leading white space is
// dropped; comment lines inside a continuation are skipped.
func splitLogical(file string, src string) []logical {
	var out []logical
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var cur *logical
	for n, raw := range lines {
		pos := Pos{File: file, Line: n + 1, Col: 1}
		text := raw
		lead := 0
		for lead < len(text) && isSpace(text[lead]) {
			lead++
		}
		trimmed := strings.TrimRight(text, " \t\r")
		if cur == nil {
			if lead == len(text) || text[lead] == '#' {
				continue
			}
		} else {
			if lead < len(text) && text[lead] == '#' {
				continue // comment inside a continuation
			}
			// continuation: leading white space dropped
			trimmed = trimmed[min(lead, len(trimmed)):]
			pos.Col += lead
		}
		cont := strings.HasSuffix(trimmed, "\\")
		if cont {
			trimmed = trimmed[:len(trimmed)-1]
		}
		if cur == nil {
			cur = &logical{text: trimmed, pos: pos}
		} else {
			cur.segs = append(cur.segs, segment{off: len(cur.text), pos: pos})
			cur.text += trimmed
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// Verbs are the ACL verbs, in the order the documentation lists them.
var Verbs = []string{"accept", "defer", "deny", "discard", "drop", "require", "warn"}

func isVerb(w string) bool {
	for _, v := range Verbs {
		if v == w {
			return true
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// word returns the word starting at i (after white space) and its bounds.
func word(s string, i int) (w string, start, end int) {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start = i
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return s[start:i], start, i
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// Parse reads one configuration file into a File. Every syntax problem is
// reported to r; Parse keeps going after errors so that one run shows them
// all.
func Parse(name string, src []byte, r *Reporter) *File {
	f := &File{Name: name}
	r.AddSource(name, src)
	if len(src) > MaxFileSize {
		r.Errorf(Pos{File: name, Line: 1, Col: 1}, "file is larger than %d bytes", MaxFileSize)
		return f
	}
	section := "main"
	var acl *ACLDef
	var stmt *Statement
	for _, l := range splitLogical(name, string(src)) {
		w, ws, we := word(l.text, 0)
		if w == "begin" {
			sec, ss, _ := word(l.text, we)
			switch {
			case sec == "acl":
				section, acl, stmt = "acl", nil, nil
			case sec == "":
				r.Errorf(l.posAt(we), "\"begin\" needs a section name: sidecar has \"begin acl\"")
			default:
				r.Errorf(l.posAt(ss), "unknown section %q: sidecar has only \"begin acl\"", sec)
				section = "skip"
			}
			continue
		}
		switch section {
		case "main":
			parseMainLine(f, l, r)
		case "acl":
			// An ACL name: `name:` alone on its line.
			if w != "" && we < len(l.text) && l.text[we] == ':' && strings.TrimSpace(l.text[we+1:]) == "" {
				acl = &ACLDef{Name: w, Pos: l.posAt(ws)}
				f.ACLs = append(f.ACLs, acl)
				stmt = nil
				continue
			}
			if acl == nil {
				r.Errorf(l.posAt(ws), "statement outside an ACL: start an ACL with a line \"name:\"")
				continue
			}
			if isVerb(w) {
				stmt = &Statement{Verb: w, Pos: l.posAt(ws)}
				acl.Statements = append(acl.Statements, stmt)
				if rest := skipSpace(l.text, we); rest < len(l.text) {
					if it := parseItem(l, rest, r); it != nil {
						stmt.Items = append(stmt.Items, it)
					}
				}
				continue
			}
			if stmt == nil {
				r.Errorf(l.posAt(ws), "expected an ACL verb (%s), found %q", strings.Join(Verbs, ", "), firstToken(l.text[ws:]))
				continue
			}
			if it := parseItem(l, ws, r); it != nil {
				stmt.Items = append(stmt.Items, it)
			}
		}
	}
	return f
}

func firstToken(s string) string {
	if i := strings.IndexAny(s, " \t="); i > 0 {
		return s[:i]
	}
	return s
}

func parseMainLine(f *File, l logical, r *Reporter) {
	w, ws, we := word(l.text, 0)
	if w == "" {
		r.Errorf(l.posAt(ws), "expected an option name, found %q", firstToken(l.text[ws:]))
		return
	}
	if w == "hide" { // Exim's "hide name = value": accepted, no effect here
		w, ws, we = word(l.text, we)
	}
	switch ListKind(w) {
	case DomainList, HostList, AddressList, LocalPartList:
		name, ns, ne := word(l.text, we)
		if name == "" {
			r.Errorf(l.posAt(ns), "%s needs a name: %s NAME = item : item", w, w)
			return
		}
		eq := skipSpace(l.text, ne)
		if eq >= len(l.text) || l.text[eq] != '=' {
			r.Errorf(l.posAt(eq), "expected \"=\" after %s %s", w, name)
			return
		}
		f.Lists = append(f.Lists, &ListDef{Kind: ListKind(w), Name: name, Pos: l.posAt(ws), Value: l.value(eq + 1)})
		return
	}
	eq := skipSpace(l.text, we)
	ol := &OptionLine{Name: w, Pos: l.posAt(ws)}
	switch {
	case eq >= len(l.text):
		// bare boolean: name, no_name, not_name
	case l.text[eq] == '=':
		ol.HasValue = true
		ol.Value = l.value(eq + 1)
	default:
		r.Errorf(l.posAt(eq), "expected \"=\" after option name %q, found %q", w, firstToken(l.text[eq:]))
		return
	}
	f.Options = append(f.Options, ol)
}

// parseItem parses `[!]name [arg] = value` starting at byte i.
func parseItem(l logical, i int, r *Reporter) *Item {
	it := &Item{Pos: l.posAt(i)}
	if l.text[i] == '!' {
		it.Negated = true
		i = skipSpace(l.text, i+1)
	}
	name, ns, ne := word(l.text, i)
	if name == "" {
		r.Errorf(l.posAt(ns), "expected a condition or modifier name, found %q", firstToken(l.text[ns:]))
		return nil
	}
	it.Name = name
	j := skipSpace(l.text, ne)
	if j < len(l.text) && l.text[j] != '=' {
		// a second word: `set acl_m_x = …` (a leading $ is allowed)
		k := j
		if l.text[k] == '$' {
			k++
		}
		arg, _, ae := word(l.text, k)
		if arg == "" {
			r.Errorf(l.posAt(j), "expected \"=\" after %q, found %q", name, firstToken(l.text[j:]))
			return nil
		}
		it.Arg, it.ArgPos = arg, l.posAt(k)
		j = skipSpace(l.text, ae)
	}
	if j >= len(l.text) {
		return it // a bare word such as "endpass"; the acl compiler decides
	}
	if l.text[j] != '=' {
		r.Errorf(l.posAt(j), "expected \"=\" after %q, found %q: write one \"name = value\" per line, and end a line with \\ to continue a long value", name+" "+it.Arg, firstToken(l.text[j:]))
		return nil
	}
	it.HasValue = true
	it.Value = l.value(j + 1)
	return it
}
