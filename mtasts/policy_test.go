package mtasts

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		mode   Mode
		mx     []Pattern
		maxAge time.Duration
		why    string // a substring of the error; "" for a valid policy
	}{
		{"RFC example", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
			ModeEnforce, []Pattern{"mail.example.com", "*.example.net", "backupmx.example.com"}, 604800 * time.Second, ""},
		{"CRLF, no final line end", "version: STSv1\r\nmode: testing\r\nmx: MX.Example.COM.\r\nmax_age: 86400",
			ModeTesting, []Pattern{"mx.example.com"}, 86400 * time.Second, ""},
		{"mode none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", ModeNone, nil, 0, ""},
		{"blank lines and unknown keys", "version: STSv1\n\nmode: enforce\nfoo: bar baz\nmx: a.example\n\nmax_age: 1\n\n",
			ModeEnforce, []Pattern{"a.example"}, time.Second, ""},
		{"first of repeated keys", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 10\nmax_age: 20\n",
			ModeTesting, []Pattern{"a.example"}, 10 * time.Second, ""},
		{"duplicate mx kept once", "version: STSv1\nmode: enforce\nmx: a.example\nmx: A.example\nmax_age: 10\n",
			ModeEnforce, []Pattern{"a.example"}, 10 * time.Second, ""},
		{"largest max_age", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n",
			ModeEnforce, []Pattern{"a.example"}, MaxMaxAge, ""},

		{"max_age above a year", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "", nil, 0, "above 31557600"},
		{"max_age of 11 digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", "", nil, 0, "1 to 10 digits"},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "", nil, 0, "1 to 10 digits"},
		{"max_age with a unit", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", "", nil, 0, "1 to 10 digits"},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", "", nil, 0, "no max_age"},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", "", nil, 0, "no version"},
		{"wrong version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "", nil, 0, "want STSv1"},
		{"unknown mode", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "", nil, 0, "want enforce"},
		{"no mode", "version: STSv1\nmx: a.example\nmax_age: 1\n", "", nil, 0, "no mode"},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", "", nil, 0, "no mx"},
		{"wildcard inside", "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"wildcard in a label", "version: STSv1\nmode: enforce\nmx: mail*.example\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"two wildcards", "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"wildcard at the end", "version: STSv1\nmode: enforce\nmx: example.*\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"bare wildcard", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"wildcard alone with dot", "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n", "", nil, 0, "wildcard"},
		{"empty label", "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "", nil, 0, "empty label"},
		{"underscore", "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n", "", nil, 0, "invalid character"},
		{"hyphen at a label's start", "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n", "", nil, 0, "hyphen"},
		{"line without colon", "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", "", nil, 0, "line 2"},
		{"HTML error page", "<html><body>Not here</body></html>\n", "", nil, 0, "line 1"},
		{"NUL in a value", "version: STSv1\nmode: enforce\x00\nmx: a.example\nmax_age: 1\n", "", nil, 0, "control"},
		{"too large", "version: STSv1\nmode: none\nmax_age: 1\n" + strings.Repeat("x: y\n", MaxPolicySize/5), "", nil, 0, "larger than"},
		{"too many mx", "version: STSv1\nmode: enforce\nmax_age: 1\n" + manyMX(MaxPatterns+1), "", nil, 0, "more than 64 mx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.body))
			if tt.why != "" {
				if err == nil || !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("ParsePolicy = %+v, %v; want an error with %q", p, err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tt.mode || p.MaxAge != tt.maxAge || strings.Join(patStrings(p.MX), " ") != strings.Join(patStrings(tt.mx), " ") {
				t.Fatalf("ParsePolicy = %+v, want mode %s mx %v max_age %v", p, tt.mode, tt.mx, tt.maxAge)
			}
			// The text form parses to the same policy.
			q, err := ParsePolicy([]byte(p.String()))
			if err != nil || q.String() != p.String() {
				t.Fatalf("round trip: %v\n%s\n%v", err, p, q)
			}
		})
	}
}

func manyMX(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("mx: mx" + strings.Repeat("a", i%50) + itoa(i) + ".example\n")
	}
	return b.String()
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func patStrings(ps []Pattern) []string {
	var out []string
	for _, p := range ps {
		out = append(out, string(p))
	}
	return out
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"mail.example.com", "MAIL.example.com.", true},
		{"mail.example.com", "mail2.example.com", false},
		{"*.example.com", "mail.example.com", true},
		{"*.example.com", "example.com", false},     // RFC 8461 §4.1: not the parent
		{"*.example.com", "a.b.example.com", false}, // only one label
		{"*.example.com", "mail.example.com.evil", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "mailexample.com", false},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("%s matches %s: %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

// BenchmarkParsePolicyHostile parses the largest policy accepted, made of
// the longest mx patterns: the bound of a fetch's parsing work.
func BenchmarkParsePolicyHostile(b *testing.B) {
	long := strings.Repeat("a", 63)
	name := long + "." + long + "." + long + ".example"
	var body strings.Builder
	body.WriteString("version: STSv1\nmode: enforce\nmax_age: 86400\nmx: " + name + "\n")
	for body.Len() < MaxPolicySize-300 {
		body.WriteString("mx: " + name + "\n") // duplicates: skipped, but parsed
	}
	data := []byte(body.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy(data); err != nil {
			b.Fatal(err)
		}
	}
}
