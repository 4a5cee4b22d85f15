package dmarc

import (
	"strings"

	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/authres"
)

// ARCOverride is what a trusted ARC chain says about a DMARC failure: the
// sealer whose ARC-Authentication-Results vouches for a DMARC pass.
type ARCOverride struct {
	Instance int    // the ARC Set of the trusted sealer that saw DMARC pass
	Sealer   string // its ARC-Seal d=
	AAR      string // its ARC-Authentication-Results payload
}

// TrustedARCPass decides the ARC side of the local-policy override of a
// DMARC failure for trusted sealers (RFC 8617 §7.2, RFC 9989 local
// policy; the mailing-list case): ok is true when
//
//   - the chain passes (not on a temporary DNS failure: the chain is then
//     unknown and nothing is overridden);
//   - k, the earliest instance sealed by a trusted sealer, exists, and
//     every sealer from k to the newest set is trusted, so that only
//     trusted hands touched the message after the one that vouches;
//   - the ARC-Authentication-Results of instance k shows dmarc=pass, for
//     fromDomain when it names a header.from.
//
// trusted matches a sealer domain (ARC-Seal d=, lower-case) against the
// configured list.
func TrustedARCPass(c *arc.Chain, fromDomain string, trusted func(sealer string) (bool, error)) (ARCOverride, bool, error) {
	if c == nil || c.State != arc.Pass || c.Temp {
		return ARCOverride{}, false, nil
	}
	k := -1
	for i := range c.Instances {
		ok, err := trusted(strings.ToLower(c.Instances[i].ASDomain))
		if err != nil {
			return ARCOverride{}, false, err
		}
		switch {
		case ok && k < 0:
			k = i
		case !ok && k >= 0:
			return ARCOverride{}, false, nil // an untrusted sealer after the trusted one
		}
	}
	if k < 0 {
		return ARCOverride{}, false, nil
	}
	in := c.Instances[k]
	_, results := authres.Parse(in.AAR)
	for _, r := range results {
		if r.Method != "dmarc" || r.Result != "pass" {
			continue
		}
		from, named := r.Prop("header", "from")
		if !named || fromDomain == "" || strings.EqualFold(strings.TrimSuffix(from, "."), strings.TrimSuffix(fromDomain, ".")) {
			return ARCOverride{Instance: in.I, Sealer: in.ASDomain, AAR: in.AAR}, true, nil
		}
	}
	return ARCOverride{}, false, nil
}
