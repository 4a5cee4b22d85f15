package authres

import (
	"strings"
	"testing"
)

// aarResult is a result as the ARC override reads it: method, result and
// properties by "ptype.name".
type aarResult struct {
	method, result string
	props          map[string]string
}

func parseForTest(payload string) []aarResult {
	_, results := Parse(payload)
	var out []aarResult
	for _, r := range results {
		a := aarResult{method: r.Method, result: r.Result, props: map[string]string{}}
		for _, p := range r.Props {
			a.props[p.Type+"."+p.Name] = p.Value
		}
		out = append(out, a)
	}
	return out
}

func TestParseARCAuthenticationResults(t *testing.T) {
	got := parseForTest(`lists.example (v1); spf = pass smtp.mailfrom=a@origin.example;` +
		` dkim=pass (sig; ok) header.d="origin.example" header.b=abc;DMARC=PASS (p=reject) header.from = origin.example; junk; arc=none`)
	want := []aarResult{
		{"spf", "pass", map[string]string{"smtp.mailfrom": "a@origin.example"}},
		{"dkim", "pass", map[string]string{"header.d": "origin.example", "header.b": "abc"}},
		{"dmarc", "pass", map[string]string{"header.from": "origin.example"}},
		{"arc", "none", map[string]string{}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].method != want[i].method || got[i].result != want[i].result || len(got[i].props) != len(want[i].props) {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
		for k, v := range want[i].props {
			if got[i].props[k] != v {
				t.Errorf("%d: %s = %q, want %q", i, k, got[i].props[k], v)
			}
		}
	}
}

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
		for _, r := range parseForTest(payload) {
			if r.method != strings.ToLower(r.method) {
				t.Fatalf("method %q not lower-case", r.method)
			}
		}
	})
}
