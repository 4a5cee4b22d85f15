package expand

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxErrors bounds how many errors one Compile reports.
const maxErrors = 10

// itemNames are the ${NAME{...}} items, for suggestions.
var itemNames = []string{"if", "sg", "lookup"}

// parser is a recursive-descent compiler. Problems that leave the
// structure of the string clear (an unknown variable, condition, operator
// or lookup type, a bad regular expression) are collected and parsing goes
// on; structural problems (a missing brace) stop it by panicking with
// abort, recovered in run.
type parser struct {
	src    string
	pos    int
	scope  Scope
	errs   []error
	depth  int        // open ${ items
	cdepth int        // open conditions
	caps   int        // > 0 where $0..$9 are set
	values int        // > 0 inside ${lookup} strings, where $value is set
	open   []openItem // open ${ items, for end-of-string messages

	hdrChecked bool
	hdrErr     error
}

type openItem struct {
	pos   int
	label string // `${if`
}

type abort struct{}

func (p *parser) run() (root node, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(abort); !ok {
				panic(r)
			}
		}
		switch len(p.errs) {
		case 0:
		case 1:
			root, err = nil, p.errs[0]
		default:
			root, err = nil, errors.Join(p.errs...)
		}
	}()
	return p.parseSeq(false), nil
}

// report records an error and goes on parsing.
func (p *parser) report(off int, format string, args ...any) {
	p.errs = append(p.errs, &Error{Offset: off, Msg: fmt.Sprintf(format, args...)})
	if len(p.errs) >= maxErrors {
		panic(abort{})
	}
}

// fail records an error and stops parsing.
func (p *parser) fail(off int, format string, args ...any) {
	p.errs = append(p.errs, &Error{Offset: off, Msg: fmt.Sprintf(format, args...)})
	panic(abort{})
}

// eofFail reports that the string ended inside the innermost open item.
func (p *parser) eofFail(expected string) {
	if len(p.open) == 0 {
		p.fail(len(p.src), "expected %s, found the end of the string", expected)
	}
	top := p.open[len(p.open)-1]
	p.fail(top.pos, "%q opened here is not complete: expected %s, found the end of the string", top.label, expected)
}

func (p *parser) push(pos int, label string) { p.open = append(p.open, openItem{pos, label}) }
func (p *parser) pop()                       { p.open = p.open[:len(p.open)-1] }

// found describes the text at the current position for messages.
func (p *parser) found() string {
	if p.pos >= len(p.src) {
		return "the end of the string"
	}
	r, size := utf8.DecodeRuneInString(p.src[p.pos:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", p.src[p.pos])
	}
	return strconv.Quote(string(r))
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) peek(c byte) bool { return p.pos < len(p.src) && p.src[p.pos] == c }

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func (p *parser) readName() string {
	start := p.pos
	for p.pos < len(p.src) && isNameChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// parseSeq parses text and items up to the end of the string or, when
// inBraces, up to an unescaped "}" (left for the caller). As in Exim, "{"
// in text is an ordinary character.
func (p *parser) parseSeq(inBraces bool) node {
	var c catBuilder
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case '}':
			if inBraces {
				return c.node()
			}
			c.text("}")
			p.pos++
		case '\\':
			p.escape(&c)
		case '$':
			c.add(p.parseDollar())
		default:
			j := p.pos + 1
			for j < len(p.src) && p.src[j] != '\\' && p.src[j] != '$' && p.src[j] != '}' {
				j++
			}
			c.text(p.src[p.pos:j])
			p.pos = j
		}
	}
	return c.node()
}

// catBuilder collects the parts of a sequence, merging adjacent literal
// text (including folded items) into one literal.
type catBuilder struct {
	parts []node
	lit   strings.Builder
}

func (c *catBuilder) text(s string) { c.lit.WriteString(s) }

func (c *catBuilder) add(n node) {
	switch n := n.(type) {
	case *litNode:
		c.lit.WriteString(n.s)
	case *catNode:
		for _, p := range n.parts {
			c.add(p)
		}
	default:
		c.flush()
		c.parts = append(c.parts, n)
	}
}

func (c *catBuilder) flush() {
	if c.lit.Len() > 0 {
		c.parts = append(c.parts, &litNode{c.lit.String()})
		c.lit.Reset()
	}
}

func (c *catBuilder) node() node {
	c.flush()
	switch len(c.parts) {
	case 0:
		return &litNode{}
	case 1:
		return c.parts[0]
	}
	return &catNode{c.parts}
}

// escape handles a backslash: \n \t \r are control characters, \N...\N
// is copied literally, and any other character is taken as it is.
func (p *parser) escape(c *catBuilder) {
	start := p.pos
	p.pos++
	if p.eof() {
		c.text(`\`)
		return
	}
	switch ch := p.src[p.pos]; ch {
	case 'n':
		c.text("\n")
	case 't':
		c.text("\t")
	case 'r':
		c.text("\r")
	case 'N':
		end := strings.Index(p.src[p.pos+1:], `\N`)
		if end < 0 {
			p.fail(start, `missing "\N" to close the "\N" opened here`)
		}
		c.text(p.src[p.pos+1 : p.pos+1+end])
		p.pos += 1 + end + 2
		return
	default:
		c.text(p.src[p.pos : p.pos+1])
	}
	p.pos++
}

// parseDollar parses $name, $N, $h_Name: or a ${...} item.
func (p *parser) parseDollar() node {
	start := p.pos
	if p.pos+1 < len(p.src) && p.src[p.pos+1] == '{' {
		return p.parseItem()
	}
	p.pos++
	if kind, n := headerPrefix(p.src[p.pos:]); n > 0 {
		return p.parseHeader(start, kind, n)
	}
	if p.pos < len(p.src) && isDigit(p.src[p.pos]) {
		ds := p.pos
		for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
			p.pos++
		}
		return p.capture(start, p.src[ds:p.pos])
	}
	name := p.readName()
	if name == "" {
		p.report(start, `"$" must be followed by a variable name or "{", found %s; write "\$" for a literal dollar sign`, p.found())
		return &litNode{"$"}
	}
	return p.variable(start, name)
}

// parseHeader parses the rest of a header variable after its prefix
// (n bytes at p.pos): the field name and the colon that ends it.
func (p *parser) parseHeader(start int, kind headerKind, n int) node {
	p.pos += n
	ns := p.pos
	for p.pos < len(p.src) && isFieldNameChar(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[ns:p.pos]
	if p.peek(':') {
		p.pos++
		if name == "" {
			p.report(start, "missing header name in %q", p.src[start:p.pos])
		}
	} else {
		p.report(start, `header variable %q must end with ":" after the header name, as in "$h_Subject:"; found %s`, p.src[start:p.pos], p.found())
	}
	if !p.hdrChecked {
		p.hdrChecked = true
		if p.scope == nil {
			p.hdrErr = errors.New("header variables are not available here")
		} else {
			p.hdrErr = p.scope.Headers()
		}
	}
	if p.hdrErr != nil {
		p.report(start, "%s", p.hdrErr.Error())
	}
	return &headerNode{pos: start, kind: kind, name: name}
}

// capture resolves $N.
func (p *parser) capture(start int, digits string) node {
	if len(digits) > 1 {
		p.report(start, "$%s does not exist: the numeric variables are $0 to $9", digits)
		return &litNode{}
	}
	if p.caps == 0 {
		p.report(start, `$%s is set only by a match condition: in the "yes" string of its ${if} and in the conditions after it in an "and", and in the replacement string of ${sg}`, digits)
		return &litNode{}
	}
	return &capNode{n: int(digits[0] - '0')}
}

// variable resolves $name through the scope.
func (p *parser) variable(start int, name string) node {
	if name == "value" && p.values > 0 {
		return valueNode{}
	}
	var g Getter
	var err error
	if p.scope != nil {
		g, err = p.scope.Var(name)
	}
	if err == nil && g == nil {
		err = fmt.Errorf("unknown variable $%s", name)
	}
	if err != nil {
		p.report(start, "%s", err.Error())
		return &litNode{}
	}
	return &varNode{pos: start, name: name, get: g}
}

// closeItem consumes the "}" that ends the item opened at start.
func (p *parser) closeItem(start int, label, after string) {
	if p.eof() {
		p.fail(start, `missing "}" to close %q opened here`, label)
	}
	if p.src[p.pos] != '}' {
		p.fail(p.pos, `expected %s in %q opened at offset %d, found %s`, after, label, start, p.found())
	}
	p.pos++
}

// parseArg parses a {string} argument; what describes it for messages.
func (p *parser) parseArg(what string) node {
	if p.eof() {
		p.eofFail(`"{" to start ` + what)
	}
	if p.src[p.pos] != '{' {
		p.fail(p.pos, `expected "{" to start %s, found %s`, what, p.found())
	}
	open := p.pos
	p.pos++
	n := p.parseSeq(true)
	if p.eof() {
		p.fail(open, `missing "}" to close %s opened here`, what)
	}
	p.pos++
	return n
}

// parseRegex parses the {regex} argument of owner ("match" or "${sg"),
// compiling it now when it is constant.
func (p *parser) parseRegex(owner string) *regexArg {
	r := &regexArg{pos: p.pos + 1}
	n := p.parseArg("the regular expression of " + owner)
	if l, ok := n.(*litNode); ok {
		re, err := compileRegex(l.s)
		if err != nil {
			p.report(r.pos, "invalid regular expression in %s: %v", owner, err)
			re, _ = compileRegex("")
		}
		r.fixed = re
		return r
	}
	r.dyn = n
	return r
}

// parseItem parses ${...} starting at p.pos.
func (p *parser) parseItem() node {
	start := p.pos
	p.pos += 2
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxNesting {
		p.fail(start, "expansion items are nested more than %d deep", MaxNesting)
	}
	if kind, n := headerPrefix(p.src[p.pos:]); n > 0 {
		h := p.parseHeader(start, kind, n)
		p.closeItem(start, p.src[start:p.pos], `"}" after the header name`)
		return h
	}
	ns := p.pos
	name := p.readName()
	if name == "" {
		if p.eof() {
			p.fail(start, `"${" opened here is not closed`)
		}
		p.fail(p.pos, `expected a variable name, an operator or an item such as "if" after "${", found %s`, p.found())
	}
	switch name {
	case "if":
		return p.parseIf(start)
	case "sg":
		return p.parseSg(start)
	case "lookup":
		return p.parseLookup(start)
	}
	if p.eof() {
		p.fail(start, `missing "}" to close %q opened here`, "${"+name)
	}
	switch c := p.src[p.pos]; {
	case c == '}':
		p.pos++
		if allDigits(name) {
			return p.capture(start, name)
		}
		return p.variable(start, name)
	case c == ':':
		p.pos++
		return p.parseOperator(start, ns, name)
	case c == '{' || isSpace(c):
		if strings.HasPrefix(name, "if") && isConditionName(name[2:]) {
			p.fail(ns+2, `missing white space after "${if": write "${if %s..."`, name[2:])
		}
		if isOperatorName(name) {
			p.fail(ns, `%q is an operator: write "${%s:STRING}"`, name, name)
		}
		p.fail(ns, `unknown expansion item "${%s"%s`, name, suggest(name, append(append([]string(nil), itemNames...), operatorNames...)))
	}
	p.fail(p.pos, `expected "}" (variable) or ":" (operator) after "${%s", found %s`, name, p.found())
	return nil
}

func isConditionName(s string) bool {
	for _, c := range conditionNames {
		if s == c {
			return true
		}
	}
	return false
}

func isOperatorName(s string) bool {
	for _, c := range operatorNames {
		if s == c || c == "length_" && strings.HasPrefix(s, c) {
			return true
		}
	}
	return false
}

// parseOperator parses the argument of ${name:...}; the colon has been
// consumed.
func (p *parser) parseOperator(start, ns int, name string) node {
	label := "${" + name + ":"
	p.push(start, label)
	defer p.pop()
	op := &opNode{}
	known := true
	switch name {
	case "lc":
		op.op = opLc
	case "uc":
		op.op = opUc
	case "domain":
		op.op = opDomain
	case "local_part":
		op.op = opLocalPart
	case "strlen":
		op.op = opStrlen
	default:
		if num, ok := strings.CutPrefix(name, "length_"); ok {
			op.op = opLength
			v, err := strconv.Atoi(num)
			if err != nil || !allDigits(num) {
				p.report(ns, `"length_" must be followed by a number of bytes, as in "${length_10:...}"`)
			}
			op.n = v
			break
		}
		known = false
		base, num := name, ""
		if i := strings.LastIndexByte(name, '_'); i >= 0 && allDigits(name[i+1:]) {
			base, num = name[:i+1], name[i+1:]
		}
		hint := suggest(base, operatorNames)
		if hint == `: did you mean "length_"?` {
			if num == "" {
				num = "N"
			}
			hint = `: did you mean "length_` + num + `"?`
		}
		p.report(ns, "unknown operator %q%s", name, hint)
	}
	op.arg = p.parseSeq(true)
	p.closeItem(start, label, `"}"`)
	if !known {
		return &litNode{}
	}
	return p.fold(op)
}

// parseIf parses the rest of ${if COND {yes}{no}}.
func (p *parser) parseIf(start int) node {
	p.push(start, "${if")
	defer p.pop()
	c := p.parseCond()
	p.skipSpace()
	n := &ifNode{cond: c, setsCaps: c.setsCaps()}
	if p.peek('{') {
		if n.setsCaps {
			p.caps++
		}
		n.yes = p.parseArg(`the "yes" string of "${if"`)
		if n.setsCaps {
			p.caps--
		}
		p.skipSpace()
		if p.peek('{') {
			n.no = p.parseArg(`the "no" string of "${if"`)
			p.skipSpace()
			p.closeItem(start, "${if", `"}" after the "no" string`)
		} else {
			p.closeItem(start, "${if", `"{" or "}" after the "yes" string`)
		}
	} else {
		p.closeItem(start, "${if", `"{" or "}" after the condition`)
	}
	// A constant condition selects its string now.
	if cc, ok := n.cond.(*constCond); ok && !n.setsCaps {
		switch {
		case cc.v && n.yes != nil:
			return n.yes
		case cc.v && n.no == nil:
			return &litNode{"true"}
		case !cc.v && n.no != nil:
			return n.no
		}
		return &litNode{}
	}
	return p.fold(n)
}

// parseCond parses one condition, possibly negated.
func (p *parser) parseCond() cond {
	p.cdepth++
	defer func() { p.cdepth-- }()
	if p.cdepth > MaxNesting {
		p.fail(p.pos, "conditions are nested more than %d deep", MaxNesting)
	}
	p.skipSpace()
	if p.eof() {
		p.eofFail("a condition")
	}
	if p.src[p.pos] == '!' && !(p.pos+1 < len(p.src) && p.src[p.pos+1] == '=') {
		p.pos++
		return p.foldCond(&notCond{p.parseCond()})
	}
	ns := p.pos
	var name string
	if strings.IndexByte("=<>!", p.src[p.pos]) >= 0 {
		for p.pos < len(p.src) && strings.IndexByte("=<>!", p.src[p.pos]) >= 0 {
			p.pos++
		}
		name = p.src[ns:p.pos]
	} else {
		name = p.readName()
	}
	if name == "" {
		p.fail(p.pos, `expected a condition such as "eq" or "def:" in %q, found %s`, p.open[len(p.open)-1].label, p.found())
	}
	switch name {
	case "eq", "eqi", "ne":
		a, b := p.parse2(name)
		return p.foldCond(&strCond{op: name, a: a, b: b})
	case "=", "==", "!=", "<", "<=", ">", ">=":
		a, b := p.parse2(name)
		return p.foldCond(&numCond{pos: ns, op: name, a: a, b: b})
	case "match":
		p.skipSpace()
		subj := p.parseArg(`the subject of "match"`)
		p.skipSpace()
		re := p.parseRegex(`"match"`)
		return &matchCond{subj: subj, re: re}
	case "def":
		return p.parseDef()
	case "and", "or":
		return p.parseList(name)
	case "isip", "isip4", "isip6", "bool":
		p.skipSpace()
		a := p.parseArg(fmt.Sprintf("the argument of %q", name))
		return p.foldCond(&argCond{pos: ns, name: name, a: a})
	}
	p.report(ns, "unknown condition %q in ${if}%s", name, suggest(name, conditionNames))
	// Skip its arguments and go on.
	if p.peek(':') { // a misspelt def:name
		p.pos++
		for p.pos < len(p.src) && isFieldNameChar(p.src[p.pos]) {
			p.pos++
		}
		if p.peek(':') {
			p.pos++
		}
	}
	for {
		p.skipSpace()
		if !p.peek('{') {
			break
		}
		p.parseArg(fmt.Sprintf("an argument of %q", name))
	}
	return &constCond{}
}

func (p *parser) parse2(name string) (node, node) {
	p.skipSpace()
	a := p.parseArg(fmt.Sprintf("the first string of %q", name))
	p.skipSpace()
	b := p.parseArg(fmt.Sprintf("the second string of %q", name))
	return a, b
}

// parseDef parses the rest of def:name.
func (p *parser) parseDef() cond {
	if !p.peek(':') {
		p.fail(p.pos, `expected ":" after "def", as in "def:sender_address", found %s`, p.found())
	}
	p.pos++
	if p.peek('$') {
		p.report(p.pos, `write the variable after "def:" without "$", as in "def:sender_address"`)
		p.pos++
	}
	ds := p.pos
	if kind, n := headerPrefix(p.src[p.pos:]); n > 0 {
		return &defCond{p.parseHeader(ds, kind, n)}
	}
	name := p.readName()
	if name == "" {
		p.fail(p.pos, `expected a variable name after "def:", found %s`, p.found())
	}
	v := p.variable(ds, name)
	if _, ok := v.(*litNode); ok {
		return &constCond{}
	}
	return &defCond{v}
}

// parseList parses the {{cond}{cond}...} of and/or.
func (p *parser) parseList(name string) cond {
	p.skipSpace()
	what := fmt.Sprintf("the list of conditions of %q", name)
	if p.eof() {
		p.eofFail(`"{" to start ` + what)
	}
	if !p.peek('{') {
		p.fail(p.pos, `expected "{" to start %s, as in "%s{{COND1}{COND2}}", found %s`, what, name, p.found())
	}
	open := p.pos
	p.pos++
	l := &listCond{and: name == "and"}
	caps := p.caps
	defer func() { p.caps = caps }()
	for {
		p.skipSpace()
		if p.eof() {
			p.fail(open, `missing "}" to close %s opened here`, what)
		}
		if p.peek('}') {
			p.pos++
			break
		}
		if !p.peek('{') {
			p.fail(p.pos, `expected "{" to start a condition in %s (each condition goes in its own braces: "%s{{COND1}{COND2}}"), found %s`, what, name, p.found())
		}
		so := p.pos
		p.pos++
		c := p.parseCond()
		p.skipSpace()
		if p.eof() {
			p.fail(so, `missing "}" to close the condition opened here in %s`, what)
		}
		if !p.peek('}') {
			p.fail(p.pos, `expected "}" after a condition in %s, found %s`, what, p.found())
		}
		p.pos++
		l.subs = append(l.subs, c)
		if l.and && c.setsCaps() {
			// The conditions after a match in an "and" run only when
			// it succeeded, and may use its $0..$9.
			p.caps = caps + 1
		}
	}
	if len(l.subs) == 0 {
		p.report(open, "%s is empty", what)
	}
	return p.foldCond(l)
}

// parseSg parses the rest of ${sg{subject}{regex}{replacement}}.
func (p *parser) parseSg(start int) node {
	p.push(start, "${sg")
	defer p.pop()
	p.skipSpace()
	subj := p.parseArg(`the subject of "${sg"`)
	p.skipSpace()
	re := p.parseRegex(`"${sg"`)
	p.skipSpace()
	p.caps++
	repl := p.parseArg(`the replacement of "${sg"`)
	p.caps--
	p.skipSpace()
	p.closeItem(start, "${sg", `"}" after the replacement`)
	return p.fold(&sgNode{pos: start, subj: subj, re: re, repl: repl})
}

// parseLookup parses the rest of ${lookup{key}kind{arg}{yes}{no}}.
func (p *parser) parseLookup(start int) node {
	p.push(start, "${lookup")
	defer p.pop()
	p.skipSpace()
	key := p.parseArg(`the key of "${lookup"`)
	p.skipSpace()
	ks := p.pos
	for p.pos < len(p.src) && isLookupNameChar(p.src[p.pos]) {
		p.pos++
	}
	kind := p.src[ks:p.pos]
	if kind == "" {
		if p.eof() {
			p.eofFail(`a lookup type such as "lsearch"`)
		}
		p.fail(p.pos, `expected a lookup type such as "lsearch" after the key of "${lookup", found %s`, p.found())
	}
	fn, names := getLookup(kind)
	if fn == nil {
		p.report(ks, "unknown lookup type %q%s", kind, suggest(kind, names))
	}
	p.skipSpace()
	n := &lookupNode{pos: start, kind: kind, fn: fn}
	n.key = key
	n.arg = p.parseArg(fmt.Sprintf("the argument of %q", kind))
	p.skipSpace()
	if p.peek('{') {
		p.values++
		n.yes = p.parseArg(`the "yes" string of "${lookup"`)
		p.skipSpace()
		if p.peek('{') {
			n.no = p.parseArg(`the "no" string of "${lookup"`)
			p.skipSpace()
		}
		p.values--
	}
	p.closeItem(start, "${lookup", `"}" at the end`)
	if fn == nil {
		return &litNode{}
	}
	return n
}

// fold replaces a node that depends on nothing known only at evaluation
// time by its value. A node whose evaluation fails (a non-numeric operand,
// output too large) is kept, so that the error happens at evaluation.
func (p *parser) fold(n node) node {
	if n.deps() != 0 {
		return n
	}
	st := getState(context.Background(), nopEnv{}, Limits{})
	defer putState(st)
	if err := n.eval(st); err != nil {
		return n
	}
	return &litNode{string(st.buf)}
}

// foldCond is fold for conditions. A condition that sets $0..$9 is kept
// for its captures; the ${if} around it may still fold.
func (p *parser) foldCond(c cond) cond {
	if c.deps() != 0 || c.setsCaps() {
		return c
	}
	if _, ok := c.(*constCond); ok {
		return c
	}
	st := getState(context.Background(), nopEnv{}, Limits{})
	defer putState(st)
	v, err := c.test(st)
	if err != nil {
		return c
	}
	return &constCond{v}
}
