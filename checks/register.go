package checks

import (
	"context"
	"fmt"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/expand"
)

func init() {
	registerOptions()
	expand.RegisterLookup("spf", lookupSPF)
	Register(acl.Default)
}

// Register adds the conditions, variables, controls and the DATA work of
// the features to reg. acl.Default gets them when the package is
// imported; tests build a fresh registry with acl.NewRegistry and
// Register. The main options and the expansion lookups are process-wide
// and registered once, at import.
func Register(reg *acl.Registry) {
	registerConfigurer(reg)
	registerSPF(reg)
	registerDKIM(reg)
	registerDMARC(reg)
	registerARC(reg)
	registerDKIMSign(reg)
	registerDSN(reg)
	reg.AddHook(acl.Hook{Name: "authentication", Stages: acl.OnlyData, Run: authenticate})
	reg.AddBodyHook(acl.BodyHook{Name: "dkim", Start: func(t *acl.Txn) acl.BodyWriter {
		if w := StartDKIM(t); w != nil {
			return w
		}
		return nil
	}})
	reg.AddBodyHook(acl.BodyHook{Name: "arc", Start: func(t *acl.Txn) acl.BodyWriter {
		if w := ARCBodyHook(t); w != nil {
			return w
		}
		return nil
	}})
}

// dataSteps are the authentication work of every message at DATA, before
// the DATA ACL runs, in the order the RFCs need: SPF and DKIM first;
// DMARC, which reads them; the ARC chain, which DMARC's trusted-sealer
// override may already have validated; last the ARC seal, whose
// ARC-Authentication-Results copies every result gathered before it (RFC
// 8617 §4.1.1).
var dataSteps = []struct {
	name string
	run  func(ctx context.Context, t *acl.Txn) error
}{
	{"spf", spfHook},
	{"dkim", dkimHook},
	{"dmarc", dmarcHook},
	{"arc", arcHook},
	{"arc_sign", arcSealHook},
}

// authenticate runs dataSteps. A step's error or panic is logged under
// its name and does not stop the others: conditions that need the same
// result report their own error.
func authenticate(ctx context.Context, t *acl.Txn) error {
	for _, step := range dataSteps {
		if err := runStep(ctx, step.run, t); err != nil {
			t.Logs = append(t.Logs, acl.LogLine{Stage: t.Stage, ACL: "(" + step.name + ")", Kind: "error", Text: err.Error()})
		}
	}
	return nil
}

func runStep(ctx context.Context, run func(ctx context.Context, t *acl.Txn) error, t *acl.Txn) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("internal error: %v", v)
		}
	}()
	return run(ctx, t)
}
