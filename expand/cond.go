package expand

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/internal/binunit"
)

// cond is a compiled ${if} condition.
type cond interface {
	test(st *state) (bool, error)
	dump(b *strings.Builder)
	deps() deps
	// setsCaps reports whether a true result may come from a match, so
	// that $0..$9 are available in the "yes" string.
	setsCaps() bool
}

// conditionNames are the names offered in "did you mean" suggestions.
var conditionNames = []string{
	"eq", "eqi", "ne", "=", "==", "!=", "<", "<=", ">", ">=",
	"match", "def", "and", "or", "isip", "isip4", "isip6", "bool",
}

// ---- constant (folded or error-recovery) ----

type constCond struct{ v bool }

func (c *constCond) test(*state) (bool, error) { return c.v, nil }
func (c *constCond) dump(b *strings.Builder)   { b.WriteString(strconv.FormatBool(c.v)) }
func (c *constCond) deps() deps                { return 0 }
func (c *constCond) setsCaps() bool            { return false }

// ---- eq, eqi, ne ----

type strCond struct {
	op   string // "eq", "eqi", "ne"
	a, b node
}

func (c *strCond) test(st *state) (bool, error) {
	start := len(st.buf)
	defer func() { st.buf = st.buf[:start] }()
	if err := c.a.eval(st); err != nil {
		return false, err
	}
	mid := len(st.buf)
	if err := c.b.eval(st); err != nil {
		return false, err
	}
	a, b := st.buf[start:mid], st.buf[mid:]
	switch c.op {
	case "eq":
		return bytes.Equal(a, b), nil
	case "eqi":
		return bytes.EqualFold(a, b), nil
	default: // "ne"
		return !bytes.Equal(a, b), nil
	}
}

func (c *strCond) dump(b *strings.Builder) { dump2(b, c.op, c.a, c.b) }
func (c *strCond) deps() deps              { return c.a.deps() | c.b.deps() }
func (c *strCond) setsCaps() bool          { return false }

func dump2(b *strings.Builder, name string, x, y node) {
	b.WriteString(name + "(")
	x.dump(b)
	b.WriteString(", ")
	y.dump(b)
	b.WriteByte(')')
}

// ---- = == != < <= > >= ----

type numCond struct {
	pos  int // offset of the condition name, for errors
	op   string
	a, b node
}

func (c *numCond) test(st *state) (bool, error) {
	start := len(st.buf)
	defer func() { st.buf = st.buf[:start] }()
	if err := c.a.eval(st); err != nil {
		return false, err
	}
	mid := len(st.buf)
	if err := c.b.eval(st); err != nil {
		return false, err
	}
	x, ok := parseNumber(st.buf[start:mid])
	if !ok {
		return false, c.notNumber(st.buf[start:mid])
	}
	y, ok := parseNumber(st.buf[mid:])
	if !ok {
		return false, c.notNumber(st.buf[mid:])
	}
	switch c.op {
	case "=", "==":
		return x == y, nil
	case "!=":
		return x != y, nil
	case "<":
		return x < y, nil
	case "<=":
		return x <= y, nil
	case ">":
		return x > y, nil
	default: // ">="
		return x >= y, nil
	}
}

func (c *numCond) notNumber(s []byte) error {
	if len(s) > 64 {
		s = append(s[:60:60], "..."...)
	}
	return evalErr(c.pos, nil, "numeric comparison %q: %q is not a number (an integer, optionally followed by K, M or G)", c.op, s)
}

func (c *numCond) dump(b *strings.Builder) { dump2(b, c.op, c.a, c.b) }
func (c *numCond) deps() deps              { return c.a.deps() | c.b.deps() }
func (c *numCond) setsCaps() bool          { return false }

// parseNumber parses an optionally signed decimal integer surrounded by
// optional white space, with an optional K, M or G suffix (powers of
// 1024), as Exim does.
func parseNumber(s []byte) (int64, bool) {
	s = bytes.TrimFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	s, mult := binunit.Cut(s, "kmg")
	if len(s) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (math.MaxInt64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	n, ok := binunit.Scale(int64(v), mult)
	if !ok {
		return 0, false
	}
	if neg {
		return -n, true
	}
	return n, true
}

// ---- match{subject}{regex} ----

type matchCond struct {
	subj node
	re   *regexArg
}

func (c *matchCond) test(st *state) (bool, error) {
	start := len(st.buf)
	if err := c.subj.eval(st); err != nil {
		st.buf = st.buf[:start]
		return false, err
	}
	re, err := c.re.get(st, "match")
	if err != nil {
		st.buf = st.buf[:start]
		return false, err
	}
	m := re.re.FindSubmatchIndex(st.buf[start:])
	if m != nil {
		st.caps = captures{subj: string(st.buf[start:]), idx: m}
		st.capsSet = true
	}
	st.buf = st.buf[:start]
	return m != nil, nil
}

func (c *matchCond) dump(b *strings.Builder) {
	b.WriteString("match(")
	c.subj.dump(b)
	b.WriteString(", ")
	c.re.dump(b)
	b.WriteByte(')')
}

func (c *matchCond) deps() deps     { return c.subj.deps() | c.re.deps() }
func (c *matchCond) setsCaps() bool { return true }

// ---- def:name ----

type defCond struct{ v node } // *varNode, *headerNode or valueNode

func (c *defCond) test(st *state) (bool, error) {
	switch v := c.v.(type) {
	case *headerNode:
		if err := st.tick(checkEvery); err != nil {
			return false, evalErr(v.pos, err, "def:%s_%s:", headerKindNames[v.kind], v.name)
		}
		return len(st.env.Header(v.name)) > 0, nil
	case *varNode:
		s, err := v.get(st.ctx, st.env)
		if err != nil {
			return false, evalErr(v.pos, err, "def:%s", v.name)
		}
		return s != "", nil
	case valueNode:
		return st.value != "", nil
	}
	return false, nil
}

func (c *defCond) dump(b *strings.Builder) {
	b.WriteString("def(")
	c.v.dump(b)
	b.WriteByte(')')
}

func (c *defCond) deps() deps     { return depDynamic }
func (c *defCond) setsCaps() bool { return false }

// ---- and, or ----

type listCond struct {
	and  bool
	subs []cond
}

func (c *listCond) test(st *state) (bool, error) {
	if c.and {
		saveCaps, saveSet := st.caps, st.capsSet
		for _, s := range c.subs {
			ok, err := s.test(st)
			if err != nil {
				return false, err
			}
			if !ok {
				// A match that succeeded before a later condition
				// failed must not leave its captures behind.
				st.caps, st.capsSet = saveCaps, saveSet
				return false, nil
			}
		}
		return true, nil
	}
	for _, s := range c.subs {
		ok, err := s.test(st)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (c *listCond) dump(b *strings.Builder) {
	if c.and {
		b.WriteString("and(")
	} else {
		b.WriteString("or(")
	}
	for i, s := range c.subs {
		if i > 0 {
			b.WriteString(", ")
		}
		s.dump(b)
	}
	b.WriteByte(')')
}

func (c *listCond) deps() deps {
	var d deps
	for _, s := range c.subs {
		d |= s.deps()
	}
	return d
}

func (c *listCond) setsCaps() bool {
	for _, s := range c.subs {
		if s.setsCaps() {
			return true
		}
	}
	return false
}

// ---- !cond ----

type notCond struct{ c cond }

func (c *notCond) test(st *state) (bool, error) {
	saveCaps, saveSet := st.caps, st.capsSet
	ok, err := c.c.test(st)
	st.caps, st.capsSet = saveCaps, saveSet
	return !ok, err
}

func (c *notCond) dump(b *strings.Builder) {
	b.WriteString("not(")
	c.c.dump(b)
	b.WriteByte(')')
}

func (c *notCond) deps() deps     { return c.c.deps() }
func (c *notCond) setsCaps() bool { return false }

// ---- isip, isip4, isip6, bool ----

type argCond struct {
	pos  int
	name string // "isip", "isip4", "isip6", "bool"
	a    node
}

func (c *argCond) test(st *state) (bool, error) {
	start := len(st.buf)
	defer func() { st.buf = st.buf[:start] }()
	if err := c.a.eval(st); err != nil {
		return false, err
	}
	s := st.buf[start:]
	if c.name == "bool" {
		v, ok := parseBool(s)
		if !ok {
			if len(s) > 64 {
				s = append(s[:60:60], "..."...)
			}
			return false, evalErr(c.pos, nil, "bool: %q is not true, false, yes, no or a number", s)
		}
		return v, nil
	}
	addr, err := netip.ParseAddr(string(s))
	if err != nil || addr.Zone() != "" {
		return false, nil
	}
	switch c.name {
	case "isip4":
		return addr.Is4(), nil
	case "isip6":
		return addr.Is6(), nil
	}
	return true, nil
}

// parseBool follows Exim's bool condition: surrounding white space is
// ignored; "true", "yes" and non-zero integers are true; "false", "no",
// "0" and the empty string are false; anything else is an error.
func parseBool(s []byte) (bool, bool) {
	s = bytes.TrimFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
	switch {
	case len(s) == 0:
		return false, true
	case bytes.EqualFold(s, []byte("true")), bytes.EqualFold(s, []byte("yes")):
		return true, true
	case bytes.EqualFold(s, []byte("false")), bytes.EqualFold(s, []byte("no")):
		return false, true
	}
	t := s
	if t[0] == '-' || t[0] == '+' {
		t = t[1:]
	}
	if len(t) == 0 {
		return false, false
	}
	nonZero := false
	for _, c := range t {
		if c < '0' || c > '9' {
			return false, false
		}
		if c != '0' {
			nonZero = true
		}
	}
	return nonZero, true
}

func (c *argCond) dump(b *strings.Builder) {
	b.WriteString(c.name + "(")
	c.a.dump(b)
	b.WriteByte(')')
}

func (c *argCond) deps() deps     { return c.a.deps() }
func (c *argCond) setsCaps() bool { return false }
