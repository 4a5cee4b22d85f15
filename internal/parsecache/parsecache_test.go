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
