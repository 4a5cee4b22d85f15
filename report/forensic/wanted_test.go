package forensic

import (
	"testing"

	"github.com/mailsidecar/sidecar/dmarc"
)

func TestWanted(t *testing.T) {
	rec := func(fo ...string) *dmarc.Record {
		return &dmarc.Record{RUF: []string{"mailto:ruf@example.com"}, FailureOptions: fo}
	}
	dkimFail := []dmarc.DKIMResult{{Result: "fail", Domain: "other.example"}}
	dkimPass := []dmarc.DKIMResult{{Result: "pass", Domain: "other.example"}}
	for _, tc := range []struct {
		name string
		in   dmarc.Input
		o    dmarc.Outcome
		why  string
	}{
		{"pass is never reported", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Pass, AlignDKIM: true, Record: rec("1")}, ""},
		{"fo absent means 0", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Fail, Record: rec()}, "0"},
		{"fo=0", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("0")}, "0"},
		{"fo=1", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("1")}, "1"},
		{"fo=d without a failing signature", dmarc.Input{DKIM: dkimPass}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("d")}, ""},
		{"fo=d, unaligned signature fails", dmarc.Input{DKIM: dkimFail}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("d")}, "d"},
		{"fo=s, SPF softfail", dmarc.Input{SPF: dmarc.SPFResult{Result: "softfail"}}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("s")}, ""},
		{"fo=s, SPF fail", dmarc.Input{SPF: dmarc.SPFResult{Result: "fail"}}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("s")}, "s"},
		{"fo=d:s, SPF fail", dmarc.Input{DKIM: dkimPass, SPF: dmarc.SPFResult{Result: "fail"}}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("d", "s")}, "s"},
		{"no ruf", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Fail, Record: &dmarc.Record{FailureOptions: []string{"1"}}}, ""},
		{"no record", dmarc.Input{}, dmarc.Outcome{Result: dmarc.None}, ""},
		{"temperror", dmarc.Input{}, dmarc.Outcome{Result: dmarc.TempError, Record: rec("1")}, ""},
		{"unknown option only", dmarc.Input{}, dmarc.Outcome{Result: dmarc.Fail, Record: rec("x")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why, ok := Wanted(tc.in, tc.o)
			if ok != (tc.why != "") || why != tc.why {
				t.Fatalf("Wanted = %q, %v; want %q", why, ok, tc.why)
			}
		})
	}
}
