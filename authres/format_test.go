package authres

import (
	"strings"
	"testing"
)

func TestAuthservID(t *testing.T) {
	tests := []struct{ value, want string }{
		{" mx.example.net; spf=pass", "mx.example.net"},
		{"mx.example.net;spf=pass", "mx.example.net"},
		{" mx.example.net 1; none", "mx.example.net"},
		{" mx.example.net(comment); none", "mx.example.net"},
		{" (leading comment) mx.example.net; none", "mx.example.net"},
		{" (nested (comment) \\) here) mx.example.net; none", "mx.example.net"},
		{"\r\n\t(folded)\r\n mx.example.net;\r\n\tdkim=pass", "mx.example.net"},
		{` "mx.example.net"; none`, "mx.example.net"},
		{` "mx\"quoted"; none`, `mx"quoted`},
		{` "unterminated`, "unterminated"},
		{" mx.example.net", "mx.example.net"},
		{" ; spf=pass", ";"[:0]},
		{"", ""},
		{" (only a comment", ""},
		{` "a; b" ; spf=pass`, "a; b"},
		{"\"000000000\\\r000", "000000000000"}, // fuzz: an escaped CR is no quoted-pair
	}
	for _, tc := range tests {
		if got := AuthservID(tc.value); got != tc.want {
			t.Errorf("AuthservID(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"mx.example.net", "MX.Example.Net", true},
		{"mx.example.net.", "mx.example.net", true},
		{"mx.example.net", "mx.example.org", false},
		{"", "", false},
	} {
		if got := SameAuthservID(tc.a, tc.b); got != tc.want {
			t.Errorf("SameAuthservID(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestFormatAuthResults(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		results []Result
		want    string
	}{
		{"none", "mx.example.net", nil, " mx.example.net; none"},
		{"one line", "mx.example.net", []Result{{Method: "SPF", Result: "Pass", Props: []Prop{prop("smtp", "mailfrom", "example.org")}}},
			" mx.example.net; spf=pass smtp.mailfrom=example.org"},
		{"quoted id", "mx example", nil, ` "mx example"; none`},
		{"values", "mx", []Result{{Method: "auth", Result: "pass", Props: []Prop{
			prop("smtp", "auth", "user@example.org"), prop("smtp", "mailfrom", "@example.org"), prop("policy", "x", "a;b"),
			prop("header", "b", "abc/def+"), prop("bad type", "x", "y")}}},
			" mx;\r\n\tauth=pass smtp.auth=user@example.org smtp.mailfrom=@example.org\r\n\tpolicy.x=\"a;b\" header.b=\"abc/def+\""},
		{"invalid method skipped", "mx", []Result{{Method: "sp f", Result: "pass"}}, " mx; none"},
		{"reason quoted", "mx", []Result{{Method: "dmarc", Result: "fail", Reason: `say "no"`}}, ` mx; dmarc=fail reason="say \"no\""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Format(tc.id, tc.results); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Every line of a folded header fits in 78 columns unless one item alone
// is longer, and the id parser reads back our own header.
func TestFormatAuthResultsFolding(t *testing.T) {
	var results []Result
	for i := range 6 {
		results = append(results, Result{Method: "dkim", Result: "pass", Reason: "good signature",
			Props: []Prop{prop("header", "d", "sub"+strings.Repeat("x", i*5)+".example.org"), prop("header", "s", "selector2024"), prop("header", "b", "AbCdEfGh")}})
	}
	v := Format("mx.example.net", results)
	for i, line := range strings.Split(HeaderName+":"+v, "\r\n") {
		if len(line) > FoldWidth {
			t.Errorf("line %d has %d columns: %q", i, len(line), line)
		}
		if i > 0 && !strings.HasPrefix(line, "\t") {
			t.Errorf("continuation line %d does not start with a tab: %q", i, line)
		}
	}
	if id := AuthservID(v); id != "mx.example.net" {
		t.Errorf("authservID of our own header = %q", id)
	}
}

func prop(typ, name, value string) Prop {
	return Prop{Type: typ, Name: name, Value: value}
}

func TestAuthResultComment(t *testing.T) {
	got := Format("mx.example", []Result{{Method: "dmarc", Result: "fail", Comment: "p=(x)",
		Props: []Prop{{Type: "header", Name: "from", Value: "ex.com"}}}})
	want := ` mx.example; dmarc=fail (p=\(x\)) header.from=ex.com`
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// Field is the header name, ": " and Line, for every kind of line.
func TestFieldIsNameAndLine(t *testing.T) {
	for _, tt := range []struct {
		id      string
		results []Result
	}{
		{"mx.example.net", nil},
		{"mx.example.net", []Result{{Method: "dmarc", Result: "pass", Comment: "p=reject dis=none", Props: []Prop{P("header", "from", "example.com")}}}},
		{"odd id", []Result{{Method: "bad method", Result: "pass"}, {Method: "SPF", Result: "Fail", Reason: `a "quoted" (reason)`}}},
	} {
		if got, want := Field(tt.id, tt.results), HeaderName+": "+Line(tt.id, tt.results); got != want {
			t.Errorf("Field = %q, want %q", got, want)
		}
	}
}
