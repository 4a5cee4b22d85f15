package authres

import (
	"strings"
	"testing"
)

// FuzzAuthservID: the tolerant parser never panics, and what it returns is
// found in the input.
func FuzzAuthservID(f *testing.F) {
	for _, s := range []string{" mx.example.net; spf=pass", ` (c (n) \) ) "q\"x" 1;`, "\r\n\t", "(", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id := AuthservID(v)
		if id != "" && !strings.Contains(strings.NewReplacer("\\", "", "\r", "", "\n", "").Replace(v), strings.NewReplacer("\\", "").Replace(id)) {
			t.Errorf("AuthservID(%q) = %q, not in the input", v, id)
		}
	})
}

// FuzzParse: the lenient parser never panics on any value, and reads back
// what Format writes: the authserv-id and every result's method, result
// and properties.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		" mx.example.net; spf=pass smtp.mailfrom=example.org",
		" mx; dkim=fail (bad (nested) \\) sig) header.d=example.com header.b=\"ab/c\"; dmarc=pass",
		"mx; arc = pass header.oldest-pass = 1; none", "(", "\"", ";;;=", "x; a=b reason=\"q\\\"\" c.d=",
	} {
		f.Add(s, "example.org")
	}
	f.Fuzz(func(t *testing.T, v, value string) {
		Parse(v)
		Split(v)
		want := []Result{{Method: "dkim", Result: "pass", Comment: "c", Reason: value, Props: []Prop{P("header", "d", value)}}}
		id, got := Parse(Format("mx.example", want))
		if id != "mx.example" || len(got) != 1 {
			t.Fatalf("Parse(Format(%q)) = %q, %d results", value, id, len(got))
		}
		if d, _ := got[0].Prop("header", "d"); got[0].Method != "dkim" || got[0].Result != "pass" || d != sanitized(value) {
			t.Errorf("Parse(Format(%q)) = %+v", value, got[0])
		}
	})
}

// sanitized is what Quote keeps of a value: controls become spaces, and
// folding inside the quoted-string is dropped by the reader.
func sanitized(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}
