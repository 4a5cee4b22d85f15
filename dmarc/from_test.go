package dmarc

import (
	"errors"
	"strings"
	"testing"
)

func TestFromDomain(t *testing.T) {
	cases := []struct {
		values []string
		want   string
		err    error
	}{
		{[]string{" joe@example.com"}, "example.com", nil},
		{[]string{" Joe SixPack <joe@Football.Example.COM>"}, "football.example.com", nil},
		{[]string{"joe@example.com."}, "", ErrBadFrom},
		{[]string{` "Joe, the \"boss\"" <joe@example.com> (comment)`}, "example.com", nil},
		{[]string{" Joe Q. Public <john.q.public@example.com>"}, "example.com", nil},
		{[]string{" =?utf-8?q?J=C3=B6rg?= <j@example.de>"}, "example.de", nil},
		{[]string{" =?x-unknown?q?abc?= <j@example.de>"}, "example.de", nil},
		{[]string{" Jörg <jörg@bücher.example>"}, "xn--bcher-kva.example", nil},
		{[]string{" a@example.com,\r\n b@EXAMPLE.com"}, "example.com", nil},
		{[]string{" list: a@example.com, b@example.com;"}, "example.com", nil},
		{[]string{" joe@sub_domain.example.com"}, "sub_domain.example.com", nil},
		{nil, "", ErrNoFrom},
		{[]string{}, "", ErrNoFrom},
		{[]string{" a@example.com", " a@example.com"}, "", ErrMultipleFrom},
		{[]string{" a@example.com, b@example.net"}, "", ErrMultipleDomain},
		{[]string{" a@example.com,\r\n\tb@sub.example.com"}, "", ErrMultipleDomain},
		{[]string{""}, "", ErrNoMailbox},
		{[]string{"  \r\n "}, "", ErrNoMailbox},
		{[]string{" undisclosed-recipients:;"}, "", ErrNoMailbox},
		{[]string{" joe"}, "", ErrBadFrom},
		{[]string{" <joe@example.com"}, "", ErrBadFrom},
		{[]string{" joe@[192.0.2.1]"}, "", ErrBadFrom},
		{[]string{" joe@exa mple.com"}, "", ErrBadFrom},
		{[]string{" joe@example..com"}, "", ErrBadFrom},
		{[]string{" joe@-"}, "", nil}, // a label of one hyphen: looked up, finds nothing
		{[]string{" joe@" + strings.Repeat("a", 64) + ".com"}, "", ErrBadFrom},
		{[]string{" joe@example.com <joe@example.com>"}, "", ErrBadFrom},
	}
	for _, c := range cases {
		got, err := FromDomain(c.values)
		if c.err == nil && c.want == "" && err == nil {
			continue // accepted, whatever the domain
		}
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("%q: got %q, %v; want %q, %v", c.values, got, err, c.want, c.err)
		}
	}
}

func TestPunycode(t *testing.T) {
	for in, want := range map[string]string{
		"食狮.com.cn":  "xn--85x722f.com.cn",
		"公司":         "xn--55qx5d",
		"中国":         "xn--fiqs8s",
		"bücher":     "xn--bcher-kva",
		"münchen.de": "xn--mnchen-3ya.de",
		"example":    "example",
		"ñ":          "xn--ida",
	} {
		got, err := toASCII(in)
		if err != nil || got != want {
			t.Errorf("toASCII(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := toASCII(strings.Repeat("ü", 64)); err == nil {
		t.Error("over-long label accepted")
	}
	if _, err := toASCII("\xff"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		" Joe <joe@example.com>", "a@b.c, d@b.c", `"x" <y@z.example>`, "g: a@b.c;", "=?utf-8?b?w7w=?= <a@ü.example>",
		"<a@b", "a@[1.2.3.4]", "(c) a@b.c (d)",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		values := []string{value}
		if twice {
			values = append(values, value)
		}
		d, err := FromDomain(values)
		if err != nil {
			if d != "" {
				t.Fatalf("domain %q with error %v", d, err)
			}
			known := false
			for _, k := range []error{ErrNoFrom, ErrMultipleFrom, ErrNoMailbox, ErrMultipleDomain, ErrBadFrom} {
				known = known || errors.Is(err, k)
			}
			if !known {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if twice {
			t.Fatal("two From fields accepted")
		}
		if !validDomain(d) {
			t.Fatalf("invalid domain %q from %q", d, value)
		}
		if strings.ToLower(d) != d || strings.HasSuffix(d, ".") {
			t.Fatalf("not normalised: %q", d)
		}
		// The domain evaluates without panics and is idempotent.
		if again, err := normalizeDomain(d); err != nil || again != d {
			t.Fatalf("normalizeDomain(%q) = %q, %v", d, again, err)
		}
	})
}
