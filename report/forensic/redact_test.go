package forensic

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedactorField(t *testing.T) {
	r := NewRedactor()
	bob := r.local("bob")
	tests := []struct{ name, in, want string }{
		{"To", " Bob Smith <bob@example.org>, carol@example.net", " " + bob + "@example.org,\r\n\t" + r.local("carol") + "@example.net"},
		{"cc", " \"Bob\" <BOB@example.org>", " " + bob + "@example.org"}, // the same mailbox, whatever its case
		{"Delivered-To", " bob@example.org", " " + bob + "@example.org"},
		{"To", " undisclosed-recipients:;", " undisclosed-recipients:;"}, // parses to no address: left in place, nothing to redact
		{"To", " bob@example.org <<broken", " " + bob + "@example.org <<broken"},
		{"Received", " from mx.example.net by mx.example.org with ESMTP id 4Q1\r\n\tfor <bob@example.org>; Fri, 4 Dec 2026 10:00:00 +0000",
			" from mx.example.net by mx.example.org with ESMTP id 4Q1\r\n\tfor <" + bob + "@example.org>; Fri, 4 Dec 2026 10:00:00 +0000"},
		{"Received", ` for <"bob smith"@example.org>`, " for <" + r.local(`"bob smith"`) + "@example.org>"},
		{"From", " Alice <alice@sender.example>", " Alice <alice@sender.example>"},
		{"Subject", " mail for bob@example.org", " mail for bob@example.org"},
	}
	for _, tt := range tests {
		if got := r.Field(tt.name, tt.in); got != tt.want {
			t.Errorf("%s:%s\n got %q\nwant %q", tt.name, tt.in, got, tt.want)
		}
	}
	if other := NewRedactor(); other.local("bob") == bob {
		t.Error("two redactors share a key")
	}
}

var redactedAt = regexp.MustCompile(`redacted-[0-9a-f]{12}@`)

// FuzzRedactInPlace: whatever the value, every '@' right after a
// character of an unquoted local-part follows a redacted local-part.
func FuzzRedactInPlace(f *testing.F) {
	for _, s := range []string{"for <bob@example.org>", `"a b"@c`, `"@"@"@`, "@@@", "a@b@c", "x\"y@z"} {
		f.Add(s)
	}
	r := NewRedactor()
	f.Fuzz(func(t *testing.T, s string) {
		out := r.inPlace(s)
		for i := 0; i < len(out); i++ {
			if out[i] != '@' || i == 0 || !localChar(out[i-1]) {
				continue
			}
			if i < 21 || !redactedAt.MatchString(out[i-21:i+1]) {
				t.Fatalf("inPlace(%q) = %q: '@' at %d not after a redacted local-part", s, out, i)
			}
		}
	})
}

// BenchmarkRedactHostile: a 256 KiB field (the most of a header a report
// carries) of quote-at runs costs time linear in its size.
func BenchmarkRedactHostile(b *testing.B) {
	r := NewRedactor()
	for _, shape := range []string{`"@`, `a@`, `"a`, `@`} {
		v := strings.Repeat(shape, MaxHeaderBytes/len(shape))
		b.Run(strings.ReplaceAll(shape, `"`, "q"), func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				r.Field("Received", v)
				r.Field("To", v)
			}
		})
	}
}
