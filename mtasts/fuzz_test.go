package mtasts

import (
	"strings"
	"testing"
)

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n"))
	f.Add([]byte("version: STSv1\r\nmode: none\r\nmax_age: 0"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.*.example\nmax_age: 99999999999\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePolicy(body)
		if err != nil {
			return
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge || len(p.MX) > MaxPatterns || (p.Mode != ModeNone && len(p.MX) == 0) {
			t.Fatalf("accepted out of bounds: %+v", p)
		}
		for _, m := range p.MX {
			if strings.Contains(string(m)[min(2, len(m)):], "*") {
				t.Fatalf("wildcard in the wrong place accepted: %q", m)
			}
		}
		q, err := ParsePolicy([]byte(p.String()))
		if err != nil || q.String() != p.String() {
			t.Fatalf("round trip of %q: %v", p.String(), err)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=b")
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if !strings.HasPrefix(txt, RecordPrefix) || r.ID == "" || len(r.ID) > 32 || !isAlnum(r.ID) {
			t.Fatalf("ParseRecord(%q) = %+v", txt, r)
		}
	})
}
