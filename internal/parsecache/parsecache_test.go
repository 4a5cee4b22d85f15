package parsecache

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	calls := 0
	errOdd := errors.New("odd length")
	c := New(2, 8, func(s string) (*string, error) {
		calls++
		if len(s)%2 == 1 {
			return nil, errOdd
		}
		u := strings.ToUpper(s)
		return &u, nil
	})
	tests := []struct {
		name, txt string
		want      string
		err       error
		calls     int // parses so far, after this one
	}{
		{"first", "ab", "AB", nil, 1},
		{"cached", "ab", "AB", nil, 1},
		{"error", "abc", "", errOdd, 2},
		{"error cached", "abc", "", errOdd, 2},
		{"too long to keep", "abcdefghij", "ABCDEFGHIJ", nil, 3},
		{"too long, parsed again", "abcdefghij", "ABCDEFGHIJ", nil, 4},
		{"evicts the oldest", "cd", "CD", nil, 5},
		{"evicted", "ab", "AB", nil, 6},
	}
	for _, tt := range tests {
		got, err := c.Parse(tt.txt)
		if err != tt.err || (got == nil) != (tt.want == "") || got != nil && *got != tt.want {
			t.Errorf("%s: Parse(%q) = %v, %v; want %q, %v", tt.name, tt.txt, got, err, tt.want, tt.err)
		}
		if calls != tt.calls {
			t.Errorf("%s: %d parses, want %d", tt.name, calls, tt.calls)
		}
	}
	a, _ := c.Parse("ab")
	b, _ := c.Parse("ab")
	if a != b {
		t.Errorf("a cached text gave a new value: %p, %p", a, b)
	}
}

// ParseParts parses the joined text once, and finds it again without
// joining (or, past the stack buffer, joined); a text too long to cache is
// parsed each time.
func TestParseParts(t *testing.T) {
	calls := 0
	c := New(4, 2000, func(s string) (string, error) {
		calls++
		return strings.ToUpper(s), nil
	})
	for i, parts := range [][]string{{"ab", "cd"}, {"abc", "d"}, {"abcd"}} {
		got, err := c.ParseParts(parts)
		if err != nil || got != "ABCD" || calls != 1 {
			t.Errorf("%d %q: %q, %v, %d parses", i, parts, got, err, calls)
		}
	}
	for _, tt := range []struct {
		n     int
		calls []int // parses after each of two calls
	}{{750, []int{2, 2}}, {1100, []int{3, 4}}} {
		long := []string{strings.Repeat("x", tt.n), strings.Repeat("y", tt.n)}
		for i, want := range tt.calls {
			if got, _ := c.ParseParts(long); got != strings.ToUpper(long[0]+long[1]) || calls != want {
				t.Errorf("%d+%d bytes, call %d: %d parses, want %d", tt.n, tt.n, i, calls, want)
			}
		}
	}
	if got, _ := c.ParseParts(nil); got != "" {
		t.Errorf("no parts: %q", got)
	}
}
