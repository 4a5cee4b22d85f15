package spf

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseRecord(t *testing.T) {
	rec, err := ParseRecord("v=spf1  +a/24//64 mx:mail.example.com ~ptr:Example.COM ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{ir}.%{v}._spf.%{d2} ?include:_spf.example.net -all redirect=_spf.example.com exp=explain.%{d} foo=bar ")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		q            Result
		mech, domain string
		c4, c6       int
	}{
		{Pass, "a", "", 24, 64},
		{Pass, "mx", "mail.example.com", 32, 128},
		{SoftFail, "ptr", "Example.COM", 32, 128},
		{Pass, "ip4", "", 32, 128},
		{Pass, "ip6", "", 32, 128},
		{Pass, "exists", "%{ir}.%{v}._spf.%{d2}", 32, 128},
		{Neutral, "include", "_spf.example.net", 32, 128},
		{Fail, "all", "", 32, 128},
	}
	if len(rec.Directives) != len(want) {
		t.Fatalf("%d directives, want %d", len(rec.Directives), len(want))
	}
	for i, w := range want {
		d := rec.Directives[i]
		if d.Qualifier != w.q || d.Mechanism != w.mech || d.Domain != w.domain || d.CIDR4 != w.c4 || d.CIDR6 != w.c6 {
			t.Errorf("directive %d = %+v, want %+v", i, d, w)
		}
	}
	if p := rec.Directives[3].Prefix; p != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("ip4 prefix %v", p)
	}
	if p := rec.Directives[4].Prefix; p != netip.MustParsePrefix("2001:db8::/32") {
		t.Errorf("ip6 prefix %v", p)
	}
	if rec.Redirect != "_spf.example.com" || rec.Exp != "explain.%{d}" {
		t.Errorf("redirect %q exp %q", rec.Redirect, rec.Exp)
	}
	if len(rec.Unknown) != 1 || rec.Unknown[0] != (Modifier{"foo", "bar"}) {
		t.Errorf("unknown modifiers %v", rec.Unknown)
	}
}

func TestParseRecordCaseInsensitive(t *testing.T) {
	rec, err := ParseRecord("V=SpF1 -ALL Redirect=x.example.com IP4:192.0.2.1 MX/24")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Directives[0].Mechanism != "all" || rec.Redirect != "x.example.com" || rec.Directives[1].Mechanism != "ip4" || rec.Directives[2].CIDR4 != 24 {
		t.Errorf("%+v", rec)
	}
}

func TestParseRecordErrors(t *testing.T) {
	bad := []string{
		"v=spf10",
		"v=spf1mx",
		"spf1 -all",
		"v=spf1 -all moo",
		"v=spf1 moo.cow/far_out=man:dog/cat",
		"v=spf1 redirect:example.com",
		"v=spf1 a:foo-bar",
		"v=spf1 -all.",
		"v=spf1 -all:foo",
		"v=spf1 all/8",
		"v=spf1 ptr/0",
		"v=spf1 ptr:",
		"v=spf1 a/33",
		"v=spf1 a//129",
		"v=spf1 a/24/64",
		"v=spf1 a:",
		"v=spf1 a:example.com:8080",
		"v=spf1 a:111.222.33.44",
		"v=spf1 a:museum",
		"v=spf1 a:museum.",
		"v=spf1 a:example.-com",
		"v=spf1 a:foo.example.com\x00",
		"v=spf1 include",
		"v=spf1 include:",
		"v=spf1 include:example.com/24",
		"v=spf1 exists",
		"v=spf1 exists:example.com/24",
		"v=spf1 ip4",
		"v=spf1 ip4:1.2.3",
		"v=spf1 ip4:1.2.3.4:8080",
		"v=spf1 ip4:1.2.3.4//32",
		"v=spf1 ip4:1.2.3.4/33",
		"v=spf1 ip4:1.2.3.4/032",
		"v=spf1 ip4:01.2.3.4",
		"v=spf1 ip4:::1",
		"v=spf1 ip6:1.2.3.4",
		"v=spf1 ip6::CAFE::BABE",
		"v=spf1 ip6:::1/129",
		"v=spf1 ip6:::1//33",
		"v=spf1 ip6:fe80::1%eth0",
		"v=spf1 1up=foo",
		"v=spf1 =all",
		"v=spf1 foo=%abc",
		"v=spf1 exp=",
		"v=spf1 exp=-all",
		"v=spf1 redirect=",
		"v=spf1 redirect=a.example.com redirect=b.example.com",
		"v=spf1 exp=a.example.com exp=b.example.com",
		"v=spf1 a:%{r}.example.com",
		"v=spf1 a:%{c}.example.com",
		"v=spf1 a:%{t}.example.com",
		"v=spf1 a:%{a}.example.com",
		"v=spf1 a:%{d0}.example.com",
		"v=spf1 a:%{d2x}.example.com",
		"v=spf1 a:%{d.example.com",
		"v=spf1 a:%(d).example.com",
		"v=spf1 a:foo%.example.com",
		"v=spf1 a:%{d}.",
		"v=spf1 a:ctrl.example.com\rptr",
		"v=spf1 ip4:192.0.2.5\n",
		"v=spf1 \u0080a:example.net",
		"v=spf1 a:\ufeffgarbage.example.net",
		"v=spf1 exiſts:example.com", // Unicode folding must not apply
		"v=spf1 -",
		"v=spf1 \t-all",
	}
	for _, s := range bad {
		_, err := ParseRecord(s)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseRecord(%q) = %v, want a SyntaxError", s, err)
		}
	}
}

func TestParseRecordValid(t *testing.T) {
	good := []string{
		"v=spf1",
		"v=spf1 ",
		"v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
		"v=spf1 a:foo:bar/baz.example.com",
		"v=spf1 a:foo.example.xn--zckzah -all",
		"v=spf1 a:example.com. -all",
		"v=spf1 a:%{H}.bar",
		"v=spf1 a:%{d}",
		"v=spf1 a:macro%%percent%_%_space%-url-space.example.com",
		"v=spf1 exists:%{l2r+-}.user.%{d2}",
		"v=spf1 exists:%{ir}.%{v}._spf.%{d2}",
		"v=spf1 a:mail.example...com",
		"v=spf1 a//0 mx/0 a/0//0",
		"v=spf1 ip4:0.0.0.0/0 ip6:::/0 ip6:::1.1.1.1/0",
		"v=spf1 default=pass",
		"v=spf1 default=+",
		"v=spf1 exp=%{d2}.exp.example.com",
		"v=spf1 a:1-2.example.123-4",
		"v=spf1 a:%{d999999999999}.example.com",
	}
	for _, s := range good {
		if _, err := ParseRecord(s); err != nil {
			t.Errorf("ParseRecord(%q): %v", s, err)
		}
	}
}

func TestParseResult(t *testing.T) {
	for in, want := range map[string]Result{
		"pass": Pass, "FAIL": Fail, "softfail": SoftFail, "neutral": Neutral, "none": None,
		"permerror": PermError, "temperror": TempError, "err_perm": PermError, "err_temp": TempError,
		"unknown": PermError, "error": TempError,
	} {
		if got, ok := ParseResult(in); !ok || got != want {
			t.Errorf("ParseResult(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "passed", "hardfail", "ſoftfail"} {
		if _, ok := ParseResult(in); ok {
			t.Errorf("ParseResult(%q) accepted", in)
		}
	}
	for _, r := range []Result{Pass, Fail, SoftFail, Neutral, None, PermError, TempError} {
		if !r.Valid() || r.String() != string(r) {
			t.Errorf("%q", r)
		}
	}
}
