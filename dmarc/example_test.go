package dmarc_test

import (
	"context"
	"fmt"

	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

func ExampleEvaluator_Evaluate() {
	zone := dnstest.NewZone().Add(`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"`)
	e := &dmarc.Evaluator{DNS: zone} // RFC 9989 tree walk
	from, err := dmarc.FromDomain([]string{" Joe <joe@example.com>"})
	o := e.Evaluate(context.Background(), dmarc.Input{
		FromDomain: from, FromErr: err,
		SPF:  dmarc.SPFResult{Result: "pass", Domain: "mailer.example.net"},
		DKIM: []dmarc.DKIMResult{{Result: "fail", Domain: "example.com", Selector: "sel"}},
	})
	fmt.Println(o.Status, "|", o.StatusText, "|", o.UsedDomain, "|", o.Policy)
	fmt.Println(o.ARHeader("mx.example.org"))
	// Output:
	// reject | Reject (p=reject) | example.com | reject
	// Authentication-Results: mx.example.org; dmarc=fail (p=reject dis=none) header.from=example.com policy.dmarc=reject
}
