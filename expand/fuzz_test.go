package expand

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// permissiveScope accepts every variable name except those starting with
// "bad"; a variable's value is derived from its name, and "fail..."
// variables fail.
type permissiveScope struct{}

func (permissiveScope) Var(name string) (Getter, error) {
	if strings.HasPrefix(name, "bad") {
		return nil, errors.New("unknown variable $" + name)
	}
	if strings.HasPrefix(name, "fail") {
		return func(context.Context, Env) (string, error) { return "", errTestVar }, nil
	}
	v := name + "@Example.COM 192.0.2.1 42"
	if name == "long" {
		v = strings.Repeat("ab ", 500)
	}
	return func(context.Context, Env) (string, error) { return v, nil }, nil
}

func (permissiveScope) Headers() error { return nil }

func fuzzSeeds() []string {
	var seeds []string
	for _, c := range evalCases {
		seeds = append(seeds, c.src)
	}
	for _, c := range compileErrCases {
		seeds = append(seeds, c.src)
	}
	seeds = append(seeds, benchSrc,
		"${sg{$long}{}{$0$0}}",
		"${sg{$long}{\\b}{${sg{$0}{}{--}}}}",
		"${if match{$x}{(a)(b)?}{$1$2${sg{$1}{(.)}{$1$1}}}}",
		strings.Repeat("${lc:", 40)+"x"+strings.Repeat("}", 40),
	)
	return seeds
}

// FuzzCompile compiles arbitrary strings with a permissive scope and
// evaluates what compiles. It checks that nothing panics or hangs, that
// errors are of the documented types, and that a constant string
// evaluates to its constant value.
func FuzzCompile(f *testing.F) {
	registerTestLookups()
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(src, "lsearch") {
			// Keep the fuzzer away from the file system.
			return
		}
		e, err := Compile(src, permissiveScope{})
		if err != nil {
			for _, ce := range splitErrors(err) {
				if ce.Offset < 0 || ce.Offset > len(src) {
					t.Fatalf("offset %d outside the %d-byte string: %v", ce.Offset, len(src), ce)
				}
			}
			if !errors.Is(err, ErrSyntax) || len(splitErrors(err)) == 0 {
				t.Fatalf("compile error %T %v is not made of *Error", err, err)
			}
			return
		}
		_ = e.String()
		start := time.Now()
		out, err := e.evalLimitsTest(newEnv(), Limits{MaxOutput: 4096})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("evaluation took %v", d)
		}
		if err != nil {
			var ee *EvalError
			if !errors.Is(err, ErrOutputTooLarge) && !errors.As(err, &ee) {
				t.Fatalf("eval error %T %v", err, err)
			}
			return
		}
		if len(out) > 4096 {
			t.Fatalf("output of %d bytes passes the limit", len(out))
		}
		if c, ok := e.Constant(); ok && c != out {
			t.Fatalf("Constant() = %q but Eval = %q", c, out)
		}
	})
}
