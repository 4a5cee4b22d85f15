package tlspolicy

import (
	"errors"
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
		if d.STS != nil && (d.STS.Err != nil || d.STS.FetchErr != nil) {
			// A failure to fetch the policy, with its RFC 8460 result type.
			attrs = append(attrs, "sts_error", d.STS.Reason, "sts_result", d.STS.reportResult())
		}
	}
	return attrs
}

// reportResult is the RFC 8460 §4.3.2.2 result type of a failed fetch:
// sts-webpki-invalid for a certificate that did not validate,
// sts-policy-invalid for an answer that was no valid policy, and
// sts-policy-fetch-error for the rest (temporary failures, no policy
// host, HTTP status, redirect).
func (s *STSDecision) reportResult() string {
	switch {
	case errors.Is(s.FetchErr, mtasts.ErrWebPKI):
		return "sts-webpki-invalid"
	case errors.Is(s.FetchErr, mtasts.ErrPolicyInvalid):
		return "sts-policy-invalid"
	}
	return "sts-policy-fetch-error"
}
