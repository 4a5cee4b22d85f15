package checks

import (
	"strings"
	"testing"
)

// FuzzParseAARResults: the lenient Authentication-Results payload parser
// used for ARC-Authentication-Results never panics and returns lower-case
// method names.
func FuzzParseAARResults(f *testing.F) {
	for _, s := range []string{
		"lists.example; dmarc=pass (p=reject) header.from=example.com",
		"x; spf=fail smtp.mailfrom=\"a;b\"; dkim=pass header.d=d (c (nested)) header.b=abc",
		"x;;; =; a=; (unclosed", "\"q;\"; arc=pass",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, r := range parseAARResults(payload) {
			if r.method != strings.ToLower(r.method) {
				t.Fatalf("method %q not lower-case", r.method)
			}
		}
	})
}
