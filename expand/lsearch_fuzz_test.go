package expand

import (
	"strings"
	"testing"
)

// FuzzParseLsearch: the lsearch file parser never panics, and every key it
// returns is lower-case and has no surrounding white space.
func FuzzParseLsearch(f *testing.F) {
	for _, s := range []string{
		"key: value\n", "# c\n\nk v\n  continued\n", "\"quoted key\": v\r\n", "a:\nb\n\t\n", ":\n\"\n\\\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for k := range parseLsearch(text) {
			if k != strings.ToLower(k) {
				t.Fatalf("key %q is not lower-case", k)
			}
		}
	})
}
