package expand

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// nestedSg returns levels ${sg} items nested in each other's replacement,
// each matching 30 times: 30^levels evaluations of inner, and no output.
func nestedSg(levels int, inner string) string {
	s := inner
	for i := 0; i < levels; i++ {
		s = "${sg{" + strings.Repeat("x", 30) + "}{x}{" + s + "}}"
	}
	return s
}

// TestDeadlineStopsLongEvaluation: evaluations that the string makes long
// without waiting for anything stop at the context's deadline.
func TestDeadlineStopsLongEvaluation(t *testing.T) {
	manyHeaders := make([]testHeader, 200_000)
	for i := range manyHeaders {
		manyHeaders[i] = testHeader{"X-Walk", " v"}
	}
	for _, tc := range []struct {
		name    string
		src     string
		headers []testHeader
	}{
		// 30^8 matches: the ${sg} loops count their work.
		{"nested sg", nestedSg(8, "${length_0:$subj}"), nil},
		// a walk over 200,000 header fields for each of 30^3 matches.
		{"header walk in sg", nestedSg(3, "${length_0:$h_X-Walk:}"), manyHeaders},
		{"def header in sg", nestedSg(3, "${if def:h_X-None:{y}}"), manyHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Compile(tc.src, mapScope{"subj"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			env := &testEnv{ctx: ctx, vars: map[string]string{"subj": "s"}, headers: tc.headers}
			done := make(chan error, 1)
			start := time.Now()
			go func() { _, err := e.evalTest(env); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want context.DeadlineExceeded", err)
				}
				var ee *EvalError
				if !errors.As(err, &ee) {
					t.Errorf("err = %T, want an *EvalError with the item's offset", err)
				}
				t.Logf("stopped after %v: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(5 * time.Second):
				t.Fatal("still evaluating 5s after a 200ms deadline")
			}
		})
	}
}
