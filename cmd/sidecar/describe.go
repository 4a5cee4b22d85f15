package main

import (
	"fmt"
	"strings"

	"github.com/mailsidecar/sidecar/arc"
)

// DescribeARC renders a chain for operators ("sidecar check"): the
// verdict on the first line, then one line per ARC Set, newest last,
// with its sealer, cv=, whether each signature verified, and its
// ARC-Authentication-Results.
func DescribeARC(c *arc.Chain) string {
	var b strings.Builder
	b.WriteString("arc=" + c.StateWord())
	switch {
	case c.State == arc.Pass:
		fmt.Fprintf(&b, " (%d instance%s, oldest pass i=%d)", len(c.Instances), plural(len(c.Instances)), c.OldestPass)
	case c.Reason != "":
		fmt.Fprintf(&b, " (%s)", c.Reason)
	}
	b.WriteByte('\n')
	verdict := func(ok bool, why string) string {
		switch {
		case ok:
			return "verified"
		case why != "":
			return "failed: " + why
		}
		return "not verified"
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, in := range c.Instances {
		fmt.Fprintf(&b, "  i=%d ARC-Seal d=%s s=%s cv=%s: %s\n", in.I, orDash(in.ASDomain), orDash(in.ASSelector), orDash(string(in.CV)), verdict(in.ASValid, in.ASError))
		fmt.Fprintf(&b, "      ARC-Message-Signature d=%s s=%s: %s\n", orDash(in.AMSDomain), orDash(in.AMSSelector), verdict(in.AMSValid, in.AMSError))
		fmt.Fprintf(&b, "      ARC-Authentication-Results: %s\n", orDash(strings.Join(strings.Fields(in.AAR), " ")))
	}
	return b.String()
}
