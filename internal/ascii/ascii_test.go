package ascii

import "testing"

func TestASCII(t *testing.T) {
	if Lower("V=SPF1 Include") != "v=spf1 include" || Lower("\u017Fx") != "\u017Fx" {
		t.Error("Lower")
	}
	if !EqualFold("Include", "iNCLUDE") || EqualFold("\u017F", "s") || EqualFold("a", "ab") {
		t.Error("EqualFold")
	}
}
