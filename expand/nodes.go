package expand

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// deps says what a node needs at evaluation time; a node with no deps is
// folded into a literal by the compiler.
type deps uint8

const (
	depDynamic deps = 1 << iota // variables, headers, lookups, $value
	depCaps                     // $0..$9 of an enclosing match
)

// node is one item of a compiled expansion. eval appends the node's
// expansion to st.buf.
type node interface {
	eval(st *state) error
	dump(b *strings.Builder)
	deps() deps
}

// ---- literal text ----

type litNode struct{ s string }

func (n *litNode) eval(st *state) error    { return st.add(n.s) }
func (n *litNode) dump(b *strings.Builder) { b.WriteString(strconv.Quote(n.s)) }
func (n *litNode) deps() deps              { return 0 }

// ---- concatenation ----

type catNode struct{ parts []node }

func (n *catNode) eval(st *state) error {
	for _, p := range n.parts {
		if err := p.eval(st); err != nil {
			return err
		}
	}
	return nil
}

func (n *catNode) dump(b *strings.Builder) {
	b.WriteString("cat(")
	for i, p := range n.parts {
		if i > 0 {
			b.WriteString(", ")
		}
		p.dump(b)
	}
	b.WriteByte(')')
}

func (n *catNode) deps() deps {
	var d deps
	for _, p := range n.parts {
		d |= p.deps()
	}
	return d
}

// ---- $variable ----

type varNode struct {
	pos  int
	name string
	get  Getter
}

func (n *varNode) eval(st *state) error {
	v, err := n.get(st.ctx, st.env)
	if err != nil {
		return evalErr(n.pos, err, "$%s", n.name)
	}
	return st.add(v)
}

func (n *varNode) dump(b *strings.Builder) { b.WriteString("var(" + n.name + ")") }
func (n *varNode) deps() deps              { return depDynamic }

// ---- $value in ${lookup} strings ----

type valueNode struct{}

func (valueNode) eval(st *state) error    { return st.add(st.value) }
func (valueNode) dump(b *strings.Builder) { b.WriteString("value") }
func (valueNode) deps() deps              { return depDynamic }

// ---- $0..$9 ----

type capNode struct{ n int }

func (n *capNode) eval(st *state) error    { return st.add(st.caps.group(n.n)) }
func (n *capNode) dump(b *strings.Builder) { b.WriteString("cap(" + strconv.Itoa(n.n) + ")") }
func (n *capNode) deps() deps              { return depCaps }

// ---- $h_Name: and friends ----

type headerKind uint8

const (
	hdrDecoded headerKind = iota // $h_, $header_
	hdrRaw                       // $rh_, $rheader_
	hdrTrimmed                   // $bh_, $bheader_
)

var headerKindNames = [...]string{hdrDecoded: "h", hdrRaw: "rh", hdrTrimmed: "bh"}

type headerNode struct {
	pos  int // offset of "$", for errors
	kind headerKind
	name string
}

func (n *headerNode) eval(st *state) error {
	// Env.Header walks every field of the message: read the deadline
	// first, as a lookup does.
	if err := st.tick(checkEvery); err != nil {
		return evalErr(n.pos, err, "$%s_%s:", headerKindNames[n.kind], n.name)
	}
	return st.add(headerValue(st.env.Header(n.name), n.kind))
}

func (n *headerNode) dump(b *strings.Builder) {
	b.WriteString(headerKindNames[n.kind] + "(" + n.name + ")")
}

func (n *headerNode) deps() deps { return depDynamic }

// ---- ${op:string} ----

type opKind uint8

const (
	opLc opKind = iota
	opUc
	opDomain
	opLocalPart
	opLength
	opStrlen
)

var opNames = [...]string{
	opLc: "lc", opUc: "uc", opDomain: "domain", opLocalPart: "local_part",
	opLength: "length", opStrlen: "strlen",
}

// operatorNames are the names offered in "did you mean" suggestions.
var operatorNames = []string{"lc", "uc", "domain", "local_part", "length_", "strlen"}

type opNode struct {
	op  opKind
	n   int // for length_N
	arg node
}

func (n *opNode) eval(st *state) error {
	start := len(st.buf)
	if err := n.arg.eval(st); err != nil {
		return err
	}
	s := st.buf[start:]
	switch n.op {
	case opLc, opUc:
		ascii := true
		for _, c := range s {
			if c >= utf8.RuneSelf {
				ascii = false
				break
			}
		}
		if ascii {
			for i, c := range s {
				if n.op == opLc && 'A' <= c && c <= 'Z' {
					s[i] = c + 'a' - 'A'
				} else if n.op == opUc && 'a' <= c && c <= 'z' {
					s[i] = c - ('a' - 'A')
				}
			}
			return nil
		}
		var t []byte
		if n.op == opLc {
			t = bytes.ToLower(s)
		} else {
			t = bytes.ToUpper(s)
		}
		st.buf = st.buf[:start]
		return st.addBytes(t)
	case opDomain, opLocalPart:
		i, j := addressPart(s, n.op == opDomain)
		copy(st.buf[start:], s[i:j])
		st.buf = st.buf[:start+j-i]
	case opLength:
		if len(s) > n.n {
			st.buf = st.buf[:start+n.n]
		}
	case opStrlen:
		l := len(s)
		st.buf = strconv.AppendInt(st.buf[:start], int64(l), 10)
	}
	return nil
}

// addressPart returns the bounds of the domain (or local part) of an
// address: an optional "Name <addr>" wrapper and surrounding white space
// are removed, and the address is split at its last "@". Without an "@"
// the domain is empty and the whole address is the local part, as in
// Exim.
func addressPart(s []byte, domain bool) (int, int) {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	if j > i && s[j-1] == '>' {
		if lt := bytes.LastIndexByte(s[i:j], '<'); lt >= 0 {
			i, j = i+lt+1, j-1
			for i < j && isSpace(s[i]) {
				i++
			}
			for j > i && isSpace(s[j-1]) {
				j--
			}
		}
	}
	at := bytes.LastIndexByte(s[i:j], '@')
	if domain {
		if at < 0 {
			return 0, 0
		}
		return i + at + 1, j
	}
	if at < 0 {
		return i, j
	}
	return i, i + at
}

func (n *opNode) dump(b *strings.Builder) {
	b.WriteString(opNames[n.op] + "(")
	if n.op == opLength {
		b.WriteString(strconv.Itoa(n.n) + ", ")
	}
	n.arg.dump(b)
	b.WriteByte(')')
}

func (n *opNode) deps() deps { return n.arg.deps() }

// ---- ${if cond {yes}{no}} ----

type ifNode struct {
	cond     cond
	yes, no  node // nil when absent
	setsCaps bool // the condition contains a (non-negated) match
}

func (n *ifNode) eval(st *state) error {
	saveCaps, saveSet := st.caps, st.capsSet
	st.capsSet = false
	ok, err := n.cond.test(st)
	if err == nil {
		switch {
		case ok && n.yes == nil && n.no == nil:
			err = st.add("true")
		case ok && n.yes != nil:
			if n.setsCaps && !st.capsSet {
				// The condition succeeded without its match (an "or"):
				// the numeric variables are empty rather than stale.
				st.caps = captures{}
			}
			err = n.yes.eval(st)
		case !ok && n.no != nil:
			st.caps = saveCaps
			err = n.no.eval(st)
		}
	}
	st.caps, st.capsSet = saveCaps, saveSet
	return err
}

func (n *ifNode) dump(b *strings.Builder) {
	b.WriteString("if(")
	n.cond.dump(b)
	if n.yes != nil {
		b.WriteString(", ")
		n.yes.dump(b)
	}
	if n.no != nil {
		b.WriteString(", ")
		n.no.dump(b)
	}
	b.WriteByte(')')
}

func (n *ifNode) deps() deps {
	d := n.cond.deps()
	if n.yes != nil {
		y := n.yes.deps()
		if n.setsCaps {
			y &^= depCaps
		}
		d |= y
	}
	if n.no != nil {
		d |= n.no.deps()
	}
	return d
}

// ---- regular expressions shared by match and sg ----

// regex is a compiled regular expression. When it contains an assertion
// that looks at the text before the match position (^, \A, \b, \B),
// after is the same expression preceded by one character, so that ${sg}
// can search the rest of the subject from one character before its
// position and still see that character.
type regex struct {
	src   string
	re    *regexp.Regexp
	after *regexp.Regexp // `(?s:.)(?:src)`, or nil when not needed
}

func compileRegex(src string) (*regex, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	r := &regex{src: src, re: re}
	t, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, err
	}
	if needsLeftContext(t) {
		// Built from the parsed expression, not by pasting text around src:
		// "\Q" without "\E" would quote the closing parenthesis.
		dot := &syntax.Regexp{Op: syntax.OpAnyChar}
		cat := &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{dot, t}}
		r.after, err = regexp.Compile(cat.String())
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// findFrom returns the leftmost match of r in s starting at or after pos,
// as regexp.FindStringSubmatchIndex would find it when searching s from
// pos: the text before pos is seen by the assertions.
func (r *regex) findFrom(s string, pos int) []int {
	if pos == 0 || r.after == nil {
		m := r.re.FindStringSubmatchIndex(s[pos:])
		for i := range m {
			if m[i] >= 0 {
				m[i] += pos
			}
		}
		return m
	}
	// pos is a character boundary, so the byte before it is a character
	// of its own when decoded from there (ASCII, or an invalid byte):
	// "(?s:.)" consumes it as context. The match found may start later;
	// the real match then starts after the character that "." took.
	base := pos - 1
	m := r.after.FindStringSubmatchIndex(s[base:])
	if m == nil {
		return nil
	}
	_, w := utf8.DecodeRuneInString(s[base+m[0]:])
	m[0] += w
	for i := range m {
		if m[i] >= 0 {
			m[i] += base
		}
	}
	return m
}

func needsLeftContext(t *syntax.Regexp) bool {
	switch t.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, s := range t.Sub {
		if needsLeftContext(s) {
			return true
		}
	}
	return false
}

// regexArg is the regex operand of match or sg: compiled by Compile when
// it is constant, otherwise expanded and compiled at evaluation time (the
// last one is cached).
type regexArg struct {
	pos   int // offset of the regex text, for errors
	fixed *regex
	dyn   node
	last  atomic.Pointer[regex]
}

func (r *regexArg) get(st *state, what string) (*regex, error) {
	if r.fixed != nil {
		return r.fixed, nil
	}
	start := len(st.buf)
	if err := r.dyn.eval(st); err != nil {
		return nil, err
	}
	src := st.buf[start:]
	if c := r.last.Load(); c != nil && c.src == string(src) {
		st.buf = st.buf[:start]
		return c, nil
	}
	s := string(src)
	st.buf = st.buf[:start]
	c, err := compileRegex(s)
	if err != nil {
		return nil, evalErr(r.pos, nil, "invalid regular expression %q in %s: %v", s, what, err)
	}
	r.last.Store(c)
	return c, nil
}

func (r *regexArg) dump(b *strings.Builder) {
	if r.fixed != nil {
		b.WriteString(strconv.Quote(r.fixed.src))
		return
	}
	r.dyn.dump(b)
}

func (r *regexArg) deps() deps {
	if r.fixed != nil {
		return 0
	}
	return r.dyn.deps()
}

// ---- ${sg{subject}{regex}{replacement}} ----

type sgNode struct {
	pos  int // offset of "${", for errors
	subj node
	re   *regexArg
	repl node
}

func (n *sgNode) eval(st *state) error {
	subj, err := st.evalString(n.subj)
	if err != nil {
		return err
	}
	re, err := n.re.get(st, "${sg}")
	if err != nil {
		return err
	}
	saveCaps, saveSet := st.caps, st.capsSet
	defer func() { st.caps, st.capsSet = saveCaps, saveSet }()

	// The iteration is regexp's FindAll, one match at a time so that a
	// large output stops it early. An empty match right after the
	// previous match is skipped and the search moves on by one character,
	// so an empty-matching regex terminates.
	last := 0
	for pos, prevEnd, scanned := 0, -1, 0; pos <= len(subj); {
		// Some regexes make each search scan the rest of the subject, and
		// the replacement may hold another ${sg}: count the work, so that
		// the transaction's deadline stops it.
		if err := st.tick(1 + scanned>>10); err != nil {
			return evalErr(n.pos, err, "${sg}")
		}
		m := re.findFrom(subj, pos)
		if m == nil {
			break
		}
		scanned = m[1] - pos
		accept := true
		if m[1] == pos {
			if m[0] == prevEnd {
				accept = false
			}
			if pos < len(subj) {
				_, w := utf8.DecodeRuneInString(subj[pos:])
				pos += w
			} else {
				pos = len(subj) + 1
			}
		} else {
			pos = m[1]
		}
		prevEnd = m[1]
		if !accept {
			continue
		}
		if err := st.add(subj[last:m[0]]); err != nil {
			return err
		}
		st.caps = captures{subj: subj, idx: m}
		if err := n.repl.eval(st); err != nil {
			return err
		}
		last = m[1]
	}
	return st.add(subj[last:])
}

func (n *sgNode) dump(b *strings.Builder) {
	b.WriteString("sg(")
	n.subj.dump(b)
	b.WriteString(", ")
	n.re.dump(b)
	b.WriteString(", ")
	n.repl.dump(b)
	b.WriteByte(')')
}

func (n *sgNode) deps() deps {
	return n.subj.deps() | n.re.deps() | n.repl.deps()&^depCaps
}

// ---- ${lookup{key}kind{arg}{yes}{no}} ----

type lookupNode struct {
	pos     int
	kind    string
	fn      LookupFunc
	key     node
	arg     node
	yes, no node // nil when absent
}

func (n *lookupNode) eval(st *state) error {
	key, err := st.evalString(n.key)
	if err != nil {
		return err
	}
	arg, err := st.evalString(n.arg)
	if err != nil {
		return err
	}
	if err := st.ctx.Err(); err != nil {
		return evalErr(n.pos, err, "${lookup} %s", n.kind)
	}
	v, found, err := n.fn(st.ctx, st.env, key, arg)
	if err != nil {
		return evalErr(n.pos, err, "${lookup} %s", n.kind)
	}
	save := st.value
	switch {
	case found && n.yes == nil:
		err = st.add(v)
	case found:
		st.value = v
		err = n.yes.eval(st)
	case n.no != nil:
		st.value = ""
		err = n.no.eval(st)
	}
	st.value = save
	return err
}

func (n *lookupNode) dump(b *strings.Builder) {
	b.WriteString("lookup(" + n.kind + ", ")
	n.key.dump(b)
	b.WriteString(", ")
	n.arg.dump(b)
	if n.yes != nil {
		b.WriteString(", ")
		n.yes.dump(b)
	}
	if n.no != nil {
		b.WriteString(", ")
		n.no.dump(b)
	}
	b.WriteByte(')')
}

func (n *lookupNode) deps() deps { return depDynamic }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
