package tlspolicy

// Level is the TLS security level decided for a next hop. Its String is
// the token Postfix's smtp_tls_policy_maps accepts.
type Level string

// Levels, from the strongest to the weakest.
const (
	// LevelDANEOnly: every usable MX host has usable TLSA records under a
	// secure MX RRset, or DANE is required by configuration: the client
	// must authenticate the server with DANE or defer (RFC 7672 §2.2).
	LevelDANEOnly Level = "dane-only"
	// LevelDANE: DANE applies to some hosts but not to others (mixed MX
	// set, insecure MX RRset, or a host whose lookups failed): the MTA's
	// own DANE client decides per host (RFC 7672 §2.2.1).
	LevelDANE Level = "dane"
	// LevelEncrypt: secure TLSA RRsets exist but none has a usable record:
	// TLS is mandatory, without authentication (RFC 7672 §2.2, §3.1).
	LevelEncrypt Level = "encrypt"
	// LevelSecure: no usable DANE, and an MTA-STS policy in enforce mode
	// (RFC 8461 §5): TLS with a PKIX-valid certificate whose name matches
	// the policy's mx patterns (Decision.Postfix gives the match=).
	LevelSecure Level = "secure"
	// LevelMay: DANE is disabled for the destination by configuration:
	// opportunistic TLS, even when the MTA's default level is dane.
	LevelMay Level = "may"
	// LevelNone: no DANE policy (no secure TLSA records): the MTA's
	// default applies. Socketmap answers NOTFOUND.
	LevelNone Level = "none"
	// LevelTemp: a lookup that matters failed (SERVFAIL, bogus, timeout):
	// the MTA must defer (RFC 7672 §2.1.1). Socketmap answers TEMP.
	LevelTemp Level = "temp"
)

func (l Level) String() string { return string(l) }

// Exim is the answer of the line protocol's "dane" request: require
// (DANE mandatory), encrypt (TLS mandatory, unauthenticated), verify (TLS
// mandatory with a PKIX-valid certificate for the MX host: MTA-STS
// enforce), try, none or defer.
func (l Level) Exim() string {
	switch l {
	case LevelDANEOnly:
		return "require"
	case LevelEncrypt:
		return "encrypt"
	case LevelSecure:
		return "verify"
	case LevelDANE:
		return "try"
	case LevelTemp:
		return "defer"
	}
	return "none"
}

// OCSP is the OCSP stapling decision for a next hop or host.
type OCSP string

// OCSP decisions, after Exim's hosts_require_ocsp and hosts_request_ocsp.
const (
	OCSPRequire OCSP = "require" // request a stapled OCSP response and fail without a valid one
	OCSPRequest OCSP = "request" // request one, do not require it
	OCSPNone    OCSP = "none"    // do not request one
)

func (o OCSP) String() string { return string(o) }

// HostStatus is what the DNS says about one MX host (or the [host] of a
// next hop) for DANE.
type HostStatus string

// Host states (RFC 7672 §2.2.2 and §2.2.3).
const (
	HostDANE      HostStatus = "dane"       // secure addresses, usable TLSA records
	HostUnusable  HostStatus = "unusable"   // secure TLSA RRset without usable records: TLS mandatory, unauthenticated
	HostNoTLSA    HostStatus = "no-tlsa"    // secure addresses, TLSA absence proven by DNSSEC
	HostInsecure  HostStatus = "insecure"   // addresses or TLSA RRset not DNSSEC-validated: no DANE
	HostNoAddress HostStatus = "no-address" // no A or AAAA records: the MTA skips the host
	HostTemp      HostStatus = "temp"       // a lookup failed: unknown, never a downgrade
	HostSkipped   HostStatus = "skipped"    // DANE not tried for this host (configuration)
)

func (s HostStatus) String() string { return string(s) }

// Mode is what the per-destination options ask for a next hop or host.
type Mode string

// Modes, from dane_*_domains and hosts_*_dane.
const (
	ModeDisabled Mode = "disabled" // dane_disable_domains
	ModeOff      Mode = "off"      // matched by no list
	ModeTry      Mode = "try"      // dane_domains or hosts_try_dane
	ModeRequire  Mode = "require"  // dane_require_domains or hosts_require_dane
)

func (m Mode) String() string { return string(m) }

// TLSA usage bits, as Exim's $tls_out_tlsa_usage: bit N is set when a
// usable record of certificate usage N was found (after
// dane_pkix_as_dane's mapping). 4 means "DANE-TA only".
const (
	UsageBitDANETA uint8 = 1 << 2
	UsageBitDANEEE uint8 = 1 << 3
)
