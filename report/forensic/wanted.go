package forensic

import (
	"strings"

	"github.com/mailsidecar/sidecar/dmarc"
)

// Wanted reports whether a message whose DMARC evaluation is o (from the
// input in) gets a failure report under the record's fo= options (RFC
// 9989 section 4.7, RFC 9991 section 3), and why: "0" when every
// mechanism failed to give an aligned pass, "1" when any did, "d" when
// a DKIM signature failed to verify (aligned or not), "s" when SPF
// failed (aligned or not). Only a DMARC failure is reported — the
// sender's contract with the control dmarc_enable_forensic — so "0" and
// "1" both hold for every failing message; a record without ruf= wants
// no report.
func Wanted(in dmarc.Input, o dmarc.Outcome) (string, bool) {
	if o.Result != dmarc.Fail || o.Record == nil || len(o.Record.RUF) == 0 {
		return "", false
	}
	fo := o.Record.FailureOptions
	if len(fo) == 0 {
		fo = []string{"0"}
	}
	for _, opt := range fo {
		switch strings.TrimSpace(opt) {
		case "0":
			if !o.AlignSPF && !o.AlignDKIM {
				return "0", true
			}
		case "1":
			if !o.AlignSPF || !o.AlignDKIM {
				return "1", true
			}
		case "d":
			for _, k := range in.DKIM {
				if strings.EqualFold(k.Result, "fail") {
					return "d", true
				}
			}
		case "s":
			if strings.EqualFold(in.SPF.Result, "fail") {
				return "s", true
			}
		}
	}
	return "", false
}
