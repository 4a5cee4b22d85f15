package checks

import (
	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/expand"
)

func init() {
	registerOptions()
	expand.RegisterLookup("spf", lookupSPF)
	Register(acl.Default)
}

// Register adds the conditions, variables and hooks of the features to
// reg. acl.Default gets them when the package is imported; tests build a
// fresh registry with acl.NewRegistry and Register. The main options and
// the expansion lookups are process-wide and registered once, at import.
func Register(reg *acl.Registry) {
	registerConfigurer(reg)
	registerSPF(reg)
	registerDKIM(reg)
	registerDMARC(reg)
	registerARC(reg) // last: its seal copies the results of the other DATA hooks
}
