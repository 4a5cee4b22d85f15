package tlspolicy

import (
	"fmt"
	"strings"
)

// Explain describes a decision for people, like posttls-finger: the MX
// hosts in order with their security, the TLSA records with their
// usability, and the policy with its reason.
func (d *Decision) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "next hop:  %s (port %d, mode %s)\n", d.NextHop, d.NextHop.Port, d.Mode)
	switch {
	case d.MXLookup && d.MXErr != nil:
		fmt.Fprintf(&b, "MX RRset:  lookup failed: %s\n", failure(d.MXErr))
	case d.MXLookup:
		sec := "insecure (not DNSSEC-validated)"
		if d.MXSecure {
			sec = "secure (DNSSEC-validated)"
		}
		fmt.Fprintf(&b, "MX RRset:  %s\n", sec)
	case d.NextHop.NoMX:
		fmt.Fprintf(&b, "MX RRset:  not looked up ([host] next hop)\n")
	}
	for i, h := range d.Hosts {
		fmt.Fprintf(&b, "host %d:    %s", i+1, h.Name)
		if d.MXLookup {
			fmt.Fprintf(&b, " (preference %d)", h.Pref)
		}
		fmt.Fprintf(&b, ": %s\n", h.Status)
		if h.Expanded != "" {
			fmt.Fprintf(&b, "           alias of %s\n", h.Expanded)
		}
		if len(h.Addrs) > 0 {
			var addrs []string
			for _, a := range h.Addrs {
				addrs = append(addrs, a.String())
			}
			sec := "insecure"
			if h.AddrSecure {
				sec = "secure"
			}
			fmt.Fprintf(&b, "           addresses (%s): %s\n", sec, strings.Join(addrs, " "))
		}
		for _, t := range h.TLSA {
			if t.Usable {
				fmt.Fprintf(&b, "           TLSA %s: usable", t)
				if t.Effective != t.Usage {
					fmt.Fprintf(&b, " as usage %d", t.Effective)
				}
				b.WriteString("\n")
			} else {
				fmt.Fprintf(&b, "           TLSA %s: unusable: %s\n", t, t.Why)
			}
		}
		if h.Reason != "" {
			fmt.Fprintf(&b, "           %s\n", h.Reason)
		}
		fmt.Fprintf(&b, "           OCSP: %s\n", h.OCSP)
	}
	if s := d.STS; s != nil {
		d.explainSTS(&b, s)
	}
	fmt.Fprintf(&b, "policy:    %s (Exim: %s)\n", d.Postfix(), d.Level.Exim())
	fmt.Fprintf(&b, "reason:    %s\n", d.Reason)
	fmt.Fprintf(&b, "OCSP:      %s (tls_out_tlsa_usage %d)\n", d.OCSP, d.UsageBits)
	if d.Level != LevelTemp && d.TTL > 0 {
		fmt.Fprintf(&b, "valid for: %s\n", d.TTL)
	}
	return b.String()
}
