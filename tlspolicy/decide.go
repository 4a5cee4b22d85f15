package tlspolicy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// MaxMXHosts is the number of MX hosts examined; later ones are reported
// as skipped (Postfix's smtp_mx_address_limit is 5 by default).
const MaxMXHosts = 10

// Decision is the policy for one next hop and how it was reached. A
// Decision may be shared through the cache: treat it as read-only.
type Decision struct {
	NextHop NextHop
	Mode    Mode  // what the domain lists ask for the next hop
	Level   Level // the policy
	Reason  string
	// MXLookup is false for [host] next hops and address literals.
	MXLookup bool
	// MXSecure is true when the MX RRset (or its proven absence) was
	// DNSSEC-validated; true for [host] next hops, where the host is the
	// destination itself.
	MXSecure bool
	// MXErr is the failure of the MX lookup, if it failed.
	MXErr error
	Hosts []Host // in MX preference order, as the MTA tries them
	// UsageBits is Exim's $tls_out_tlsa_usage for the hosts with DANE:
	// bit N set for usable records of usage N.
	UsageBits uint8
	OCSP      OCSP
	// TTL is the smallest TTL of the DNS answers used.
	TTL time.Duration
	// Err is the failure behind LevelTemp.
	Err error
	// STS is the MTA-STS side, nil when it was not looked up (DANE
	// decided, or mta_sts is off for the next hop).
	STS *STSDecision
}

// Host is what the DNS says about one MX host.
type Host struct {
	Name       string
	Pref       uint16
	Mode       Mode
	Status     HostStatus
	Addrs      []netip.Addr
	AddrSecure bool
	Expanded   string // the CNAME-expanded name, when the host is an alias
	TLSABase   string // the TLSA query name whose records were used
	TLSA       []TLSARecord
	UsageBits  uint8
	OCSP       OCSP
	Reason     string
	Err        error
}

// Rules are the compiled per-destination options.
type Rules struct {
	DANEDomains    *List // dane_domains: try DANE
	RequireDomains *List // dane_require_domains: DANE or defer
	DisableDomains *List // dane_disable_domains: never DANE
	TryHosts       *List // hosts_try_dane
	RequireHosts   *List // hosts_require_dane
	RequireOCSP    *List // hosts_require_ocsp
	RequestOCSP    *List // hosts_request_ocsp
	// RequestOCSPDefault is true while hosts_request_ocsp has its default
	// "*": then, with DANE in use, OCSP is requested only when only DANE-TA
	// records were found (Exim's rule on $tls_out_tlsa_usage).
	RequestOCSPDefault bool
	PKIXAsDANE         bool // dane_pkix_as_dane
}

// domainMode is what the domain lists say about a next-hop name.
func (r *Rules) domainMode(name string) Mode {
	switch {
	case r.RequireDomains.Match(name, nil):
		return ModeRequire
	case r.DisableDomains.Match(name, nil):
		return ModeDisabled
	case r.DANEDomains.Match(name, nil):
		return ModeTry
	}
	return ModeOff
}

// hostMode combines the next hop's mode with the host lists. A
// requirement wins over everything else: fail closed.
func (r *Rules) hostMode(domain Mode, name string, addrs []netip.Addr) Mode {
	switch {
	case domain == ModeRequire || r.RequireHosts.Match(name, addrs):
		return ModeRequire
	case domain == ModeDisabled:
		return ModeDisabled
	case domain == ModeTry || r.TryHosts.Match(name, addrs):
		return ModeTry
	}
	return ModeOff
}

// ocsp decides OCSP stapling for a host (or next hop) from the host lists
// and the usage bits of its usable TLSA records (0: DANE not in use).
func (r *Rules) ocsp(name string, addrs []netip.Addr, usage uint8) OCSP {
	switch {
	case r.RequireOCSP.Match(name, addrs):
		return OCSPRequire
	case !r.RequestOCSP.Match(name, addrs):
		return OCSPNone
	case r.RequestOCSPDefault && usage != 0 && usage != UsageBitDANETA:
		return OCSPNone
	}
	return OCSPRequest
}

// engine makes decisions from DNS.
type engine struct {
	q     resolver.Querier
	rules *Rules
	sts   *STS // nil: no MTA-STS
}

// ttlTracker keeps the smallest TTL of the answers used.
type ttlTracker struct {
	mu  sync.Mutex
	ttl time.Duration
	set bool
}

func (t *ttlTracker) add(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.set || d < t.ttl {
		t.ttl, t.set = d, true
	}
}

func (t *ttlTracker) get() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ttl
}

// query asks the DNS and records the TTL of answers.
func (e *engine) query(ctx context.Context, tt *ttlTracker, name string, t resolver.Type) (*resolver.Answer, error) {
	ans, err := e.q.Query(ctx, name, t)
	if err == nil {
		tt.add(ans.TTL)
	}
	return ans, err
}

// decide computes the decision for h, with no cache: DANE first, then
// MTA-STS where DANE gave nothing.
func (e *engine) decide(ctx context.Context, h NextHop) *Decision {
	tt := &ttlTracker{}
	d := e.decideDANE(ctx, tt, h)
	e.applySTS(ctx, tt, d)
	return d
}

// decideDANE computes the DANE decision for h.
func (e *engine) decideDANE(ctx context.Context, tt *ttlTracker, h NextHop) *Decision {
	d := &Decision{NextHop: h, MXSecure: true}
	r := e.rules
	d.Mode = r.domainMode(h.Name)
	if h.IP.IsValid() {
		host := Host{Name: h.IP.String(), Addrs: []netip.Addr{h.IP}, Status: HostSkipped,
			Reason: "an address literal has no TLSA base domain (RFC 7672 §2.2.2)"}
		host.Mode = r.hostMode(d.Mode, "", host.Addrs)
		host.OCSP = r.ocsp("", host.Addrs, 0)
		d.Hosts = []Host{host}
		d.OCSP = host.OCSP
		if host.Mode == ModeRequire {
			d.Level, d.Reason = LevelDANEOnly, "DANE is required, but an address literal cannot use DANE: the MTA will defer"
		} else if host.Mode == ModeDisabled {
			d.Level, d.Reason = LevelMay, "DANE is disabled for this destination (dane_disable_domains)"
		} else {
			d.Level, d.Reason = LevelNone, "an address literal has no TLSA base domain: no DANE"
		}
		return d
	}
	hostListsMatter := !r.TryHosts.Empty() || !r.RequireHosts.Empty()
	switch {
	case d.Mode == ModeDisabled && r.RequireHosts.Empty():
		d.Level, d.Reason = LevelMay, "DANE is disabled for this destination (dane_disable_domains)"
		d.OCSP = r.ocsp(h.Name, nil, 0)
		return d
	case d.Mode == ModeOff && !hostListsMatter:
		d.Level, d.Reason = LevelNone, "DANE is not enabled for this destination (dane_domains)"
		d.OCSP = r.ocsp(h.Name, nil, 0)
		return d
	}

	var hosts []Host
	if h.NoMX {
		hosts = []Host{{Name: h.Name}}
	} else {
		d.MXLookup, d.MXSecure = true, false // secure only once an answer says so
		ans, err := e.query(ctx, tt, h.Name, resolver.TypeMX)
		if err != nil {
			d.MXErr = err
			return e.failed(d, fmt.Sprintf("MX lookup for %s failed", h.Name), err)
		}
		d.MXSecure = ans.Secure
		switch {
		case ans.NXDomain():
			d.Level, d.Reason, d.TTL = LevelNone, fmt.Sprintf("%s does not exist (NXDOMAIN): the MTA will bounce", h.Name), tt.get()
			d.OCSP = r.ocsp(h.Name, nil, 0)
			return d
		case ans.NoData():
			// RFC 5321 §5.1: the domain itself is the implicit MX.
			hosts = []Host{{Name: h.Name}}
		default:
			for _, rec := range ans.Records {
				target := strings.TrimSuffix(rec.Target, ".")
				if target == "" {
					d.Level, d.Reason, d.TTL = LevelNone, "null MX (RFC 7505): the domain accepts no mail", tt.get()
					d.OCSP = r.ocsp(h.Name, nil, 0)
					return d
				}
				hosts = append(hosts, Host{Name: target, Pref: rec.Pref})
			}
			sortByPref(hosts)
		}
	}
	if len(hosts) > MaxMXHosts {
		for i := MaxMXHosts; i < len(hosts); i++ {
			hosts[i].Status, hosts[i].Reason = HostSkipped, fmt.Sprintf("beyond the first %d MX hosts", MaxMXHosts)
		}
	}
	var wg sync.WaitGroup
	for i := range hosts {
		if i >= MaxMXHosts {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.host(ctx, tt, d.Mode, h.Port, &hosts[i])
		}()
	}
	wg.Wait()
	d.Hosts = hosts
	d.TTL = tt.get()
	e.combine(d)
	return d
}

// sortByPref orders hosts by MX preference; equal preferences keep the
// order of the answer (a stable sort). Security never reorders hosts.
func sortByPref(hosts []Host) {
	for i := 1; i < len(hosts); i++ {
		for j := i; j > 0 && hosts[j].Pref < hosts[j-1].Pref; j-- {
			hosts[j], hosts[j-1] = hosts[j-1], hosts[j]
		}
	}
}

func (e *engine) failed(d *Decision, what string, err error) *Decision {
	d.Level, d.Err = LevelTemp, err
	d.Reason = what + ": " + failure(err) + "; deferring, never downgrading"
	d.OCSP = e.rules.ocsp(d.NextHop.Name, nil, 0)
	return d
}

// failure names a lookup failure for people.
func failure(err error) string {
	switch {
	case errors.Is(err, resolver.ErrTimeout):
		return "timeout"
	case errors.Is(err, resolver.ErrServFail):
		return "SERVFAIL (server failure or DNSSEC-bogus answer)"
	case errors.Is(err, resolver.ErrRefused):
		return "refused"
	case errors.Is(err, resolver.ErrBadName):
		return "invalid name"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return err.Error()
}

// host fills in the status of one MX host: secure addresses (RFC 7672
// §2.2.2), then TLSA records at the expanded and the original name
// (§2.2.3).
func (e *engine) host(ctx context.Context, tt *ttlTracker, domainMode Mode, port int, h *Host) {
	r := e.rules
	defer func() { h.OCSP = r.ocsp(h.Name, h.Addrs, h.UsageBits) }()
	a, errA := e.query(ctx, tt, h.Name, resolver.TypeA)
	aaaa, errAAAA := e.query(ctx, tt, h.Name, resolver.TypeAAAA)
	var answers []*resolver.Answer
	var lookupErr error
	for _, x := range []struct {
		ans *resolver.Answer
		err error
	}{{a, errA}, {aaaa, errAAAA}} {
		if x.err != nil {
			lookupErr = x.err
			continue
		}
		answers = append(answers, x.ans)
	}
	h.Mode = r.hostMode(domainMode, h.Name, nil)
	if len(answers) == 0 {
		h.Status, h.Err = HostTemp, lookupErr
		h.Reason = "address lookup failed: " + failure(lookupErr)
		return
	}
	h.AddrSecure = true
	for _, ans := range answers {
		h.AddrSecure = h.AddrSecure && ans.Secure
		for _, rec := range ans.Records {
			h.Addrs = append(h.Addrs, rec.IP)
		}
		if n := len(ans.CNAME); n > 0 && h.Expanded == "" {
			h.Expanded = ans.CNAME[n-1]
		}
	}
	h.Mode = r.hostMode(domainMode, h.Name, h.Addrs)
	if len(h.Addrs) == 0 {
		if lookupErr != nil {
			h.Status, h.Err = HostTemp, lookupErr
			h.Reason = "address lookup failed: " + failure(lookupErr)
			return
		}
		h.Status, h.Reason = HostNoAddress, "no A or AAAA records"
		return
	}
	if h.Mode == ModeOff || h.Mode == ModeDisabled {
		h.Status, h.Reason = HostSkipped, "DANE not enabled for this host"
		return
	}
	if !h.AddrSecure {
		h.Status, h.Reason = HostInsecure, "address records are not DNSSEC-validated (RFC 7672 §2.2.2)"
		return
	}
	// RFC 7672 §2.2.3: the expanded name first, then the original name.
	bases := []string{h.Name}
	if h.Expanded != "" && h.Expanded != h.Name {
		bases = []string{h.Expanded, h.Name}
	}
	h.Status = HostNoTLSA
	for _, base := range bases {
		qname := TLSABase(base, port)
		ans, err := e.query(ctx, tt, qname, resolver.TypeTLSA)
		if err != nil {
			h.Status, h.Err, h.TLSABase = HostTemp, err, qname
			h.Reason = "TLSA lookup at " + qname + " failed: " + failure(err)
			return
		}
		if !ans.Secure {
			h.Status, h.Reason = HostInsecure, "TLSA RRset at "+qname+" is not DNSSEC-validated"
			continue
		}
		if len(ans.Records) == 0 {
			h.Status, h.Reason = HostNoTLSA, "no TLSA records at "+qname+" (absence proven by DNSSEC)"
			continue
		}
		h.TLSABase = qname
		for _, rec := range ans.Records {
			if rec.TLSA == nil {
				continue
			}
			c := ClassifyTLSA(*rec.TLSA, r.PKIXAsDANE)
			h.TLSA = append(h.TLSA, c)
			if c.Usable {
				h.UsageBits |= 1 << c.Effective
			}
		}
		if h.UsageBits != 0 {
			h.Status, h.Reason = HostDANE, "usable TLSA records at "+qname
		} else {
			h.Status, h.Reason = HostUnusable, "TLSA records at "+qname+" are all unusable: TLS mandatory, unauthenticated"
		}
		return
	}
}

// combine turns the host states into the next hop's level (RFC 7672 §2.2).
func (e *engine) combine(d *Decision) {
	var nDANE, nUnusable, nTemp, nOther int
	var firstTemp *Host
	for i := range d.Hosts {
		h := &d.Hosts[i]
		switch h.Status {
		case HostDANE:
			nDANE++
			d.UsageBits |= h.UsageBits
		case HostUnusable:
			nUnusable++
		case HostTemp:
			nTemp++
			if firstTemp == nil {
				firstTemp = h
			}
		case HostNoAddress:
		default:
			nOther++
		}
	}
	defer func() {
		usage := uint8(0) // DANE not in use
		if d.Level == LevelDANEOnly || d.Level == LevelDANE {
			usage = d.UsageBits
		}
		d.OCSP = e.rules.ocsp(d.NextHop.Name, nil, usage)
	}()

	// A host for which DANE is required must have it.
	for i := range d.Hosts {
		h := &d.Hosts[i]
		if h.Mode != ModeRequire || h.Status == HostDANE || h.Status == HostNoAddress {
			continue
		}
		if h.Status == HostTemp {
			d.Level, d.Err = LevelTemp, h.Err
			d.Reason = fmt.Sprintf("DANE is required and the lookups for %s failed (%s); deferring", h.Name, h.Reason)
			return
		}
		d.Level = LevelDANEOnly
		d.Reason = fmt.Sprintf("DANE is required, but %s cannot use it (%s): the MTA will defer it", h.Name, h.Status)
		return
	}
	if d.Mode == ModeRequire && !d.MXSecure {
		d.Level = LevelDANEOnly
		d.Reason = "DANE is required, but the MX RRset is not DNSSEC-validated: the MTA will defer"
		return
	}
	total := nDANE + nUnusable + nTemp + nOther
	secureMX := "secure MX RRset"
	if !d.MXLookup {
		secureMX = "[host] next hop, no MX lookup"
	}
	switch {
	case total == 0:
		d.Level, d.Reason = LevelNone, "no MX host has an address"
	case nTemp == total:
		d.Level, d.Err = LevelTemp, firstTemp.Err
		d.Reason = fmt.Sprintf("lookups failed for every MX host (%s: %s); deferring, never downgrading", firstTemp.Name, firstTemp.Reason)
	case !d.MXSecure:
		if nDANE+nUnusable+nTemp > 0 {
			d.Level = LevelDANE
			d.Reason = "the MX RRset is not DNSSEC-validated, so DANE is not mandatory; it may be used with the secure hosts (RFC 7672 §2.2.1)"
		} else {
			d.Level, d.Reason = LevelNone, "the MX RRset is not DNSSEC-validated and no MX host has secure TLSA records: no DANE"
		}
	case nDANE > 0 && nDANE+nTemp == total:
		d.Level = LevelDANEOnly
		d.Reason = fmt.Sprintf("%s; %s usable TLSA records: DANE authentication is mandatory", secureMX, countHosts(nDANE, total))
		if nTemp > 0 {
			d.Reason += fmt.Sprintf("; lookups failed for %s, which the MTA checks itself", firstTemp.Name)
		}
	case nUnusable == total:
		d.Level = LevelEncrypt
		d.Reason = "secure TLSA records exist but none is usable: TLS is mandatory, without authentication (RFC 7672 §2.2)"
	case nDANE+nUnusable+nTemp == 0:
		d.Level, d.Reason = LevelNone, "no MX host has secure TLSA records: no DANE"
	default:
		d.Level = LevelDANE
		d.Reason = fmt.Sprintf("%s; %s usable TLSA records, the others not: DANE per host", secureMX, countHosts(nDANE, total))
		if nTemp > 0 {
			d.Reason += fmt.Sprintf("; lookups failed for %s, which the MTA checks itself", firstTemp.Name)
		}
	}
}

func countHosts(n, total int) string {
	if n == total {
		if total == 1 {
			return "the MX host has"
		}
		return fmt.Sprintf("all %d MX hosts have", total)
	}
	return fmt.Sprintf("%d of %d MX hosts have", n, total)
}
