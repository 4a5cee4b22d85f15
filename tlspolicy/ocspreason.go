package tlspolicy

import (
	"fmt"
	"net/netip"

	"github.com/mailsidecar/sidecar/config"
)

// OCSPReason explains the OCSP answer of d (an "ocsp HOST" request) from
// the host lists, in OCSP terms rather than DANE's: which list matched,
// and the two ways a required OCSP response can go wrong — a host with
// DANE-EE records only (such servers seldom staple: OCSP is likely usable
// only with DANE-TA), and a host for which TLS is not mandatory (the
// requirement holds only once TLS is up).
func (r *Rules) OCSPReason(d *Decision) string {
	name := d.NextHop.Name
	var addrs []netip.Addr
	if d.NextHop.IP.IsValid() {
		name, addrs = "", []netip.Addr{d.NextHop.IP}
	}
	host := d.NextHop.String()
	var usage uint8
	if d.Level == LevelDANEOnly || d.Level == LevelDANE {
		usage = d.UsageBits
	}
	switch {
	case r.RequireOCSP.Match(name, addrs):
		why := "hosts_require_ocsp matches " + host + ": the server must staple a valid OCSP response"
		if usage != 0 && usage&UsageBitDANETA == 0 {
			why += fmt.Sprintf("; but it has DANE-EE records only (TLSA usage bits %d), and DANE-EE servers seldom staple: OCSP is likely usable only with DANE-TA, so delivery may defer", usage)
		}
		if d.Level == LevelNone || d.Level == LevelMay {
			why += "; TLS is not mandatory for it (policy " + d.Level.String() + "): the requirement holds only once TLS is up, so make TLS mandatory for the host (Exim: hosts_require_tls)"
		}
		return why
	case !r.RequestOCSP.Match(name, addrs):
		return "hosts_request_ocsp does not match " + host + ": no OCSP response is asked for"
	case r.RequestOCSPDefault && usage != 0 && usage != UsageBitDANETA:
		return fmt.Sprintf("%s uses DANE-EE (TLSA usage bits %d): OCSP is not requested while hosts_request_ocsp is \"*\"; the TLSA record pins the certificate", host, usage)
	}
	return "hosts_request_ocsp matches " + host + ": a stapled OCSP response is asked for, not required"
}

// warnOCSP adds check-config warnings about hosts_require_ocsp: with DANE
// in use it also covers hosts that publish DANE-EE records only, which
// seldom staple; and it has effect only where TLS is mandatory.
func warnOCSP(cfg *config.Config, r *Rules) {
	if r.RequireOCSP.Empty() || cfg.Reporter == nil {
		return
	}
	pos := cfg.Get("hosts_require_ocsp").Value.Pos
	if !r.DANEDomains.Empty() || !r.TryHosts.Empty() || !r.RequireHosts.Empty() {
		cfg.Reporter.Warnf(pos, "hosts_require_ocsp covers hosts that may use DANE: those with DANE-EE (usage 3) records only seldom staple OCSP, and mail to them will defer; OCSP is likely usable only with DANE-TA (usage 2) — limit the list to such hosts, or set dane_disable_domains for its domains")
	}
	cfg.Reporter.Warnf(pos, "hosts_require_ocsp holds only once TLS is up: for a host whose answer is none or may (no DANE, no MTA-STS enforce) the MTA can send without TLS and without OCSP; make TLS mandatory for these hosts as well (Exim: hosts_require_tls; Postfix: a policy of encrypt or stronger)")
}
