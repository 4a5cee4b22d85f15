package expand

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Expr is a compiled expansion string. It is immutable after Compile and
// may be evaluated by many goroutines at once.
type Expr struct {
	src  string
	root node
}

// Compile parses src and resolves its variables, headers, operators and
// lookup types through scope (nil means no variables and no headers).
// Every error is an *Error carrying the byte offset of the problem; when
// several independent problems are found they are combined with
// errors.Join. errors.Is(err, ErrSyntax) is true for all of them.
func Compile(src string, scope Scope) (*Expr, error) {
	p := &parser{src: src, scope: scope}
	root, err := p.run()
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, root: root}, nil
}

// MustCompile is like Compile but panics on error. It is meant for
// expansion strings built into the program.
func MustCompile(src string, scope Scope) *Expr {
	e, err := Compile(src, scope)
	if err != nil {
		panic(fmt.Sprintf("expand: Compile(%q): %v", src, err))
	}
	return e
}

// Source returns the string given to Compile.
func (e *Expr) Source() string { return e.src }

// Constant returns the value of the expansion and true when it does not
// depend on anything known only at evaluation time (variables, headers,
// lookups); items over constant text are folded by Compile.
func (e *Expr) Constant() (string, bool) {
	if l, ok := e.root.(*litNode); ok {
		return l.s, true
	}
	return "", false
}

// String returns a canonical dump of the compiled tree, for tests and
// debugging. Literal text is Go-quoted; items are written as calls:
//
//	cat("DMARC ", var(dmarc_status), if(eq(h(Subject), "x"), lc(cap(1)), ""))
func (e *Expr) String() string {
	var b strings.Builder
	e.root.dump(&b)
	return b.String()
}

// Eval expands the string for one transaction with the default limits;
// ctx bounds the evaluation (lookups, variables that wait, long ${sg}).
func (e *Expr) Eval(ctx context.Context, env Env) (string, error) {
	return e.EvalLimits(ctx, env, Limits{})
}

// EvalLimits expands the string with explicit limits. A zero or negative
// MaxOutput means DefaultMaxOutput. When the output (including the
// intermediate strings of conditions and operators) would exceed the
// limit, evaluation stops with ErrOutputTooLarge. Other failures (a
// variable or lookup that fails, a non-numeric operand of a numeric
// comparison, an invalid dynamic regular expression) are returned as
// *EvalError; the caller should treat them as temporary failures (defer).
func (e *Expr) EvalLimits(ctx context.Context, env Env, lim Limits) (string, error) {
	if l, ok := e.root.(*litNode); ok {
		if lim.MaxOutput > 0 && len(l.s) > lim.MaxOutput ||
			lim.MaxOutput <= 0 && len(l.s) > DefaultMaxOutput {
			return "", ErrOutputTooLarge
		}
		return l.s, nil
	}
	if env == nil {
		env = nopEnv{}
	}
	st := getState(ctx, env, lim)
	err := e.root.eval(st)
	var out string
	if err == nil {
		out = string(st.buf)
	}
	putState(st)
	return out, err
}

// EvalError is an evaluation failure of the item at byte offset Offset of
// the source string.
type EvalError struct {
	Offset int    // byte offset of the item ("$" or "${") in the source
	Msg    string // what failed
	Err    error  // underlying error (from a variable getter or lookup), or nil
}

func (e *EvalError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("offset %d: %s: %v", e.Offset, e.Msg, e.Err)
	}
	return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
}

func (e *EvalError) Unwrap() error { return e.Err }

func evalErr(off int, err error, format string, args ...any) error {
	return &EvalError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: err}
}

// nopEnv stands in for a nil Env.
type nopEnv struct{}

func (nopEnv) Header(string) []string { return nil }

// captures are the groups of the innermost successful match: group i is
// subj[idx[2i]:idx[2i+1]] when idx[2i] >= 0.
type captures struct {
	subj string
	idx  []int
}

func (c *captures) group(i int) string {
	if 2*i+1 >= len(c.idx) || c.idx[2*i] < 0 {
		return ""
	}
	return c.subj[c.idx[2*i]:c.idx[2*i+1]]
}

// state is the per-evaluation scratch space. All output, including the
// operands of conditions and operators, is appended to buf, so the output
// limit bounds all memory an evaluation uses for strings.
type state struct {
	ctx     context.Context // the caller's, for the duration of one evaluation
	env     Env
	buf     []byte
	max     int
	caps    captures
	capsSet bool   // a match in the current ${if} condition succeeded
	value   string // $value inside ${lookup} strings
	work    int    // units of work done (see tick)
	check   int    // the value of work at which tick next reads the deadline
}

// checkEvery is how many units of work an evaluation does between two
// reads of its deadline. A unit is one ${sg} match, or 1 KiB of subject
// scanned for it; a header read or a lookup reads the deadline at once.
const checkEvery = 64

// tick counts units of work and, every checkEvery of them, returns the
// context's error once the deadline has passed. ${sg} evaluates its
// replacement once per match, so nested ${sg} items multiply; everything
// else an expansion does is bounded by the size of the compiled string and
// of the output, so counting the ${sg} matches bounds the work done
// between two reads of the deadline.
func (st *state) tick(units int) error {
	st.work += units
	if st.work < st.check {
		return nil
	}
	st.check = st.work + checkEvery
	return st.ctx.Err()
}

var statePool = sync.Pool{New: func() any { return &state{buf: make([]byte, 0, 256)} }}

func getState(ctx context.Context, env Env, lim Limits) *state {
	st := statePool.Get().(*state)
	if ctx == nil {
		ctx = context.Background()
	}
	st.ctx, st.env = ctx, env
	st.max = lim.MaxOutput
	if st.max <= 0 {
		st.max = DefaultMaxOutput
	}
	return st
}

func putState(st *state) {
	if cap(st.buf) > 64<<10 {
		st.buf = make([]byte, 0, 256)
	}
	*st = state{buf: st.buf[:0]}
	statePool.Put(st)
}

// add appends s, failing when the buffer would exceed the limit.
func (st *state) add(s string) error {
	if len(st.buf)+len(s) > st.max {
		return ErrOutputTooLarge
	}
	st.buf = append(st.buf, s...)
	return nil
}

// addBytes is add for a byte slice.
func (st *state) addBytes(s []byte) error {
	if len(st.buf)+len(s) > st.max {
		return ErrOutputTooLarge
	}
	st.buf = append(st.buf, s...)
	return nil
}

// evalString evaluates n into the buffer and returns it as a new string,
// leaving the buffer as it was.
func (st *state) evalString(n node) (string, error) {
	start := len(st.buf)
	err := n.eval(st)
	s := string(st.buf[start:])
	st.buf = st.buf[:start]
	return s, err
}
