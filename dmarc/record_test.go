package dmarc

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	cases := []struct {
		txt    string
		want   string // Record.String()
		errs   []string
		policy bool // HasPolicy
	}{
		{"v=DMARC1; p=reject", "v=DMARC1; p=reject", nil, true},
		{"v=DMARC1;p=quarantine;", "v=DMARC1; p=quarantine", nil, true},
		{"v = DMARC1 ;\tp = none ; ", "v=DMARC1; p=none", nil, true},
		{"v=DMARC1", "v=DMARC1", nil, false},
		{"v=DMARC1; p=reject; sp=quarantine; np=none; psd=n; t=y; pct=20; adkim=s; aspf=s; fo=1:d:s; rf=afrf; ri=3600",
			"v=DMARC1; p=reject; sp=quarantine; np=none; psd=n; t=y; pct=20; adkim=s; aspf=s; fo=1:d:s; ri=3600", nil, true},
		{"v=DMARC1; p=REJECT; SP=None; ADKIM=S", "v=DMARC1; p=reject; sp=none; adkim=s", nil, true},
		{"v=DMARC1; p=none; rua=mailto:a@example.com, mailto:b@example.net!10m; ruf=mailto:f@example.com",
			"v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@example.net!10m; ruf=mailto:f@example.com", nil, true},
		{"v=DMARC1; p=bounce", "v=DMARC1", []string{"invalid value: p=bounce"}, false},
		{"v=DMARC1; p=none; p=reject", "v=DMARC1; p=none", []string{"duplicate tag: p=reject"}, true},
		{"v=DMARC1; p=none; pct=101; adkim=x; t=maybe; psd=q; ri=-1; fo=2",
			"v=DMARC1; p=none", []string{"invalid value: pct=101", "invalid value: adkim=x", "invalid value: t=maybe",
				"invalid value: psd=q", "invalid value: ri=-1", "invalid value: fo=2"}, true},
		{"v=DMARC1; p=none; junk; =x; p2p=", "v=DMARC1; p=none", []string{`malformed tag "junk"`, `malformed tag "=x"`, `malformed tag "p2p="`}, true},
		{"v=DMARC1; p=none; future=whatever; x=1", "v=DMARC1; p=none", nil, true},
		{"v=DMARC1; p=none; rua=mailto:a@example.com,,x", "v=DMARC1; p=none", []string{"invalid value: rua=mailto:a@example.com,,x"}, true},
		{"v=DMARC1;; p=none", "v=DMARC1; p=none", []string{`malformed tag ""`}, true},
	}
	for _, c := range cases {
		r, err := ParseRecord(c.txt)
		if err != nil {
			t.Errorf("%q: %v", c.txt, err)
			continue
		}
		if got := r.String(); got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.txt, got, c.want)
		}
		var errs []string
		for _, e := range r.Errors {
			errs = append(errs, e.Error())
		}
		if !reflect.DeepEqual(errs, c.errs) {
			t.Errorf("%q: errors %q, want %q", c.txt, errs, c.errs)
		}
		if r.HasPolicy != c.policy {
			t.Errorf("%q: HasPolicy %v", c.txt, r.HasPolicy)
		}
		// The canonical form parses to the same record.
		again, err := ParseRecord(r.String())
		if err != nil || again.String() != r.String() {
			t.Errorf("%q: round trip %v %v", c.txt, again, err)
		}
	}
}

func TestParseRecordDefaults(t *testing.T) {
	r, err := ParseRecord("v=DMARC1; p=none")
	if err != nil {
		t.Fatal(err)
	}
	want := &Record{Policy: PolicyNone, HasPolicy: true, PSD: PSDUnknown, DKIMAlignment: AlignRelaxed, SPFAlignment: AlignRelaxed,
		Percent: 100, FailureOptions: []string{"0"}, ReportFormats: []string{"afrf"}, ReportInterval: 86400}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
}

func TestParseRecordNotDMARC(t *testing.T) {
	for _, txt := range []string{"", "v=spf1 -all", "p=reject; v=DMARC1", "v=DMARC2; p=none", "v=dmarc1; p=none", "v:DMARC1", "vv=DMARC1", "v=DMARC1 p=none"} {
		if _, err := ParseRecord(txt); !errors.Is(err, ErrNotDMARC) {
			t.Errorf("%q: err %v", txt, err)
		}
		if isDMARC(txt) {
			t.Errorf("isDMARC(%q)", txt)
		}
	}
}

func TestTagErrorsAreTyped(t *testing.T) {
	r, _ := ParseRecord("v=DMARC1; p=x; p=none; bad")
	kinds := []error{ErrBadValue, ErrDuplicate, ErrMalformed}
	if len(r.Errors) != len(kinds) {
		t.Fatalf("errors %v", r.Errors)
	}
	for i, k := range kinds {
		var te *TagError
		if !errors.As(r.Errors[i], &te) || !errors.Is(te, k) {
			t.Errorf("error %d: %v is not %v", i, r.Errors[i], k)
		}
	}
}

func TestUsable(t *testing.T) {
	for txt, want := range map[string]string{
		"v=DMARC1; p=reject":                              "v=DMARC1; p=reject",
		"v=DMARC1":                                        "",
		"v=DMARC1; rua=mailto:a@example.com":              "v=DMARC1; p=none; rua=mailto:a@example.com",
		"v=DMARC1; rua=notauri":                           "",
		"v=DMARC1; p=reject; np=x; rua=https://r.example": "v=DMARC1; p=none; rua=https://r.example",
		"v=DMARC1; p=reject; sp=x":                        "",
	} {
		r, _ := ParseRecord(txt)
		u, ok := r.usable()
		got := ""
		if ok {
			got = u.String()
		}
		if got != want {
			t.Errorf("%q: usable %q, want %q", txt, got, want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject; sp=none; rua=mailto:a@b.c", "v=DMARC1", "v=DMARC1;;;", "v=DMARC1; pct=5; fo=0:1", "p=none"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if (err == nil) != isDMARC(txt) {
			t.Fatalf("ParseRecord err %v but isDMARC %v", err, isDMARC(txt))
		}
		if err != nil {
			if r != nil {
				t.Fatal("record with error")
			}
			return
		}
		if r.Percent < 0 || r.Percent > 100 {
			t.Fatalf("pct %d", r.Percent)
		}
		for _, p := range []Policy{r.Policy, r.SubdomainPolicy, r.NonexistentPolicy} {
			if p != "" && p != PolicyNone && p != PolicyQuarantine && p != PolicyReject {
				t.Fatalf("policy %q", p)
			}
		}
		s := r.String()
		again, err := ParseRecord(s)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", s, err)
		}
		if again.String() != s {
			t.Fatalf("round trip %q → %q", s, again.String())
		}
		if u, ok := r.usable(); ok && !u.HasPolicy {
			t.Fatal("usable record without policy")
		}
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("canonical form with a line break: %q", s)
		}
	})
}
