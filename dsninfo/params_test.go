package dsninfo

import (
	"strings"
	"testing"
)

func TestParams(t *testing.T) {
	e := ParseEnvelope([]string{"SIZE=100", "ret=hdrs", "ENVID=QQ+2B314159"})
	if e.Ret != "HDRS" || e.EnvID != "QQ+314159" {
		t.Errorf("envelope %+v", e)
	}
	if e := ParseEnvelope([]string{"RET=PARTIAL", "ENVID=a+zz"}); e.Ret != "" || e.EnvID != "" {
		t.Errorf("invalid values kept: %+v", e)
	}
	r := ParseRcptRequest([]string{"NOTIFY=success,Failure,bogus", "ORCPT=rfc822;bob+40example.org"})
	if r.NotifyString() != "SUCCESS,FAILURE" || r.ORCPT != (Typed{"rfc822", "bob@example.org"}) {
		t.Errorf("rcpt %+v", r)
	}
	for _, bad := range []string{"a+", "a+4", "a=b", "a b", strings.Repeat("x", 1001), "+0A"} {
		if d, err := DecodeXtext(bad); err == nil && bad != "+0A" {
			t.Errorf("DecodeXtext(%q) = %q, want an error", bad, d)
		} else if bad == "+0A" && (err != nil || d != "") {
			t.Errorf("DecodeXtext(+0A) = %q, %v: a control character is cleaned away", d, err)
		}
	}
}

func FuzzParams(f *testing.F) {
	f.Add("NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;a+2Bb@example.org")
	f.Add("ENVID=+41+", "RET=FULL")
	f.Fuzz(func(t *testing.T, a, b string) {
		e := ParseEnvelope([]string{a, b})
		r := ParseRcptRequest([]string{a, b})
		for _, s := range []string{e.EnvID, r.ORCPT.Value, r.ORCPT.Type} {
			if len(s) > maxParam || !isPrintableUTF8(s) {
				t.Fatalf("kept %q", s)
			}
		}
		if len(r.Notify) > 1+len(a+b)/4 {
			t.Fatalf("%d NOTIFY keywords", len(r.Notify))
		}
	})
}
