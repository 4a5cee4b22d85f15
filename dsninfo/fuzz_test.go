package dsninfo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(crlf(postfixStyle)))
	f.Add([]byte(crlf(missingBlanks)))
	f.Add([]byte(globalSuccess()))
	// The seed-built Exim sample and the notices real MTAs wrote.
	samples, _ := filepath.Glob("testdata/*.eml")
	for _, name := range samples {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, name := range []string{"wrong charset", "no boundary", "nested reports", "ARF report"} {
		f.Add([]byte(hostile(name)))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		lim := Limits{MaxLine: 200, MaxValue: 100, MaxHeader: 1000, MaxRecipients: 5, MaxParts: 10, MaxDepth: 3, MaxScan: 500}
		r, err := Parse(bytes.NewReader(msg), lim)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Recipients) > lim.MaxRecipients {
			t.Fatalf("%d recipients kept", len(r.Recipients))
		}
		for _, rc := range r.Recipients {
			for _, s := range []string{rc.Address(), rc.DiagnosticCode.Value, rc.RemoteMTA.Value, rc.ReportingDiagnostic} {
				if len(s) > lim.MaxLine+lim.MaxValue {
					t.Fatalf("value of %d bytes kept", len(s))
				}
				if !isPrintableUTF8(s) {
					t.Fatalf("%q kept", s)
				}
			}
		}
		switch r.Kind {
		case DSN, Guessed, NotDSN, Unparsed:
		default:
			t.Fatalf("Kind %q", r.Kind)
		}
		if r.Kind == Unparsed && r.Reason == "" {
			t.Fatal("Unparsed without a reason")
		}
	})
}
