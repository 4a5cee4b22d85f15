package tlspolicy

import (
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/mtasts"
)

// ReportType is the RFC 8460 §4.3 policy type of a decision: "tlsa" when
// DANE decided, "sts" when an MTA-STS policy (enforce or testing) applies,
// "no-policy-found" otherwise. The policy log line carries it so that
// "sidecar report tls" can tell which policy the MTA's sessions were under.
func (d *Decision) ReportType() string {
	switch {
	case d.Level == LevelDANEOnly || d.Level == LevelDANE || d.Level == LevelEncrypt:
		return "tlsa"
	case d.STS != nil && d.STS.Policy != nil && d.STS.Policy.Mode != mtasts.ModeNone:
		return "sts"
	}
	return "no-policy-found"
}

// reportAttrs are the policy log line's attributes for TLS reports: the
// policy type and the policy itself (the usable TLSA records of the DANE
// hosts, comma-separated; or the MTA-STS policy's id, mode, mx patterns
// and max_age).
func (d *Decision) reportAttrs() []any {
	t := d.ReportType()
	attrs := []any{"type", t}
	switch t {
	case "tlsa":
		var recs []string
		seen := map[string]bool{}
		for _, h := range d.Hosts {
			for _, r := range h.TLSA {
				if s := r.String(); !seen[s] {
					seen[s] = true
					recs = append(recs, s)
				}
			}
		}
		attrs = append(attrs, "tlsa", strings.Join(recs, ","))
	case "sts":
		p := d.STS.Policy
		mx := make([]string, len(p.MX))
		for i, m := range p.MX {
			mx[i] = string(m)
		}
		attrs = append(attrs, "sts_id", d.STS.ID, "sts_mode", string(p.Mode), "sts_mx", strings.Join(mx, ","),
			"sts_max_age", strconv.FormatInt(int64(p.MaxAge.Seconds()), 10))
	default:
		if d.STS != nil && d.STS.Err != nil {
			// A temporary failure to fetch the policy (RFC 8460
			// sts-policy-fetch-error).
			attrs = append(attrs, "sts_error", d.STS.Reason)
		}
	}
	return attrs
}
