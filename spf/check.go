package spf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/resolver"
)

// Limits are the processing limits of RFC 7208 §4.6.4. A zero (or
// negative) field means the RFC value.
type Limits struct {
	// Lookups is the most terms that cause DNS queries (include, a, mx,
	// ptr, exists and redirect) one check may evaluate; one more is
	// permerror. RFC: 10 (a MUST).
	Lookups int
	// Voids is the most of those terms whose lookup may answer NXDOMAIN
	// or NODATA; one more is permerror. RFC: 2 (SHOULD, configurable).
	Voids int
	// MXNames is the most MX records an mx term may return; more is
	// permerror. RFC: 10.
	MXNames int
	// PTRNames is how many PTR names the ptr mechanism and %{p} consider;
	// the rest are ignored. RFC: 10.
	PTRNames int
}

// The RFC 7208 §4.6.4 limits.
const (
	DefaultLookups  = 10
	DefaultVoids    = 2
	DefaultMXNames  = 10
	DefaultPTRNames = 10
)

func (l Limits) withDefaults() Limits {
	if l.Lookups <= 0 {
		l.Lookups = DefaultLookups
	}
	if l.Voids <= 0 {
		l.Voids = DefaultVoids
	}
	if l.MXNames <= 0 {
		l.MXNames = DefaultMXNames
	}
	if l.PTRNames <= 0 {
		l.PTRNames = DefaultPTRNames
	}
	return l
}

// Checker evaluates SPF policies. It logs nothing, reads no configuration
// and sends every DNS query through DNS. A Checker is safe for concurrent
// use when its DNS is.
type Checker struct {
	DNS      resolver.Querier
	Receiver string           // %{r} and the receiver in comments; "" means "unknown"
	Now      func() time.Time // %{t}; nil means time.Now
	Limits   Limits
}

// Request is the SMTP session data an SPF check needs.
type Request struct {
	IP     netip.Addr // the SMTP client
	Helo   string     // the HELO/EHLO argument
	Sender string     // the MAIL FROM address, "" for the null sender
}

// Identities (§2.3, §2.4), as Received-SPF's identity= names them.
const (
	IdentityMailFrom = "mailfrom"
	IdentityHelo     = "helo"
)

// Outcome is the result of a check and what led to it.
type Outcome struct {
	Result      Result
	Identity    string     // IdentityMailFrom, IdentityHelo, or "" from CheckHost
	Domain      string     // the <domain> checked
	Sender      string     // the <sender>, with "postmaster" for a missing local part
	IP          netip.Addr // the client address, IPv4-mapped addresses unmapped
	Receiver    string     // the receiver as %{r} saw it
	Mechanism   string     // the term that matched, as written (e.g. "ip4:192.0.2.0/24"), or "default"
	Explanation string     // for fail: the expanded exp= text, "" when there is none
	Problem     string     // why the result is permerror, temperror or none
	Lookups     int        // DNS-querying terms counted (§4.6.4), including one that broke the limit
	Voids       int        // void lookups counted (§4.6.4)
	Guessed     bool       // CheckHostGuess evaluated its guess record
}

// CheckHost is check_host() of RFC 7208 §4: is ip allowed to use domain?
// sender is the <sender> (a mailbox, or a domain for HELO); helo is the
// HELO/EHLO argument for %{h}.
func (c *Checker) CheckHost(ctx context.Context, ip netip.Addr, domain, sender, helo string) Outcome {
	return c.check(ctx, ip, domain, sender, helo, "", "")
}

// CheckMailFrom checks the MAIL FROM identity (§2.4). For the null sender
// it checks postmaster@<HELO> instead.
func (c *Checker) CheckMailFrom(ctx context.Context, r Request) Outcome {
	sender := r.Sender
	if sender == "" {
		sender = "postmaster@" + r.Helo
	}
	domain := sender
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		domain = sender[i+1:]
	}
	return c.check(ctx, r.IP, domain, sender, r.Helo, IdentityMailFrom, "")
}

// CheckHelo checks the HELO identity (§2.3): the HELO domain with
// postmaster@<HELO> as sender.
func (c *Checker) CheckHelo(ctx context.Context, r Request) Outcome {
	return c.check(ctx, r.IP, r.Helo, "postmaster@"+r.Helo, r.Helo, IdentityHelo, "")
}

// CheckHostGuess is CheckHost, but when domain publishes no SPF record it
// evaluates guessRecord as if domain had published it, like Exim's
// spf_guess (for example "v=spf1 a/24 mx/24 ptr ?all"; the "v=spf1" may
// be left out). Outcome.Guessed tells whether the guess was used. Only the
// checked domain is guessed for, never an include or redirect target.
func (c *Checker) CheckHostGuess(ctx context.Context, ip netip.Addr, domain, sender, helo, guessRecord string) Outcome {
	if !isSPFRecord(guessRecord) {
		guessRecord = "v=spf1 " + guessRecord
	}
	return c.check(ctx, ip, domain, sender, helo, "", guessRecord)
}

// verdict is the result of evaluating one domain's record.
type verdict struct {
	result  Result
	mech    string
	problem string
	exp     *expSource // for fail: the exp= of the record that decided
}

// expSource is an exp= modifier and the domain of its record (%{d}).
type expSource struct {
	spec   macroString
	domain string
}

// abort stops evaluation with permerror or temperror.
type abort struct {
	result  Result
	problem string
}

func permErr(format string, args ...any) *abort {
	return &abort{PermError, fmt.Sprintf(format, args...)}
}

// eval is the state of one check: counters and caches shared by the
// whole evaluation, including includes and redirects.
type eval struct {
	ctx     context.Context
	dns     resolver.Querier
	lim     Limits
	vars    macroVars
	lookups int
	voids   int
	guessed bool

	// The PTR lookup for ptr and %{p}, made at most once, and the
	// validation of each name, made at most once per name.
	ptrDone   bool
	ptrNames  []string // the first PTRNames names; nil on error or void
	ptrVoid   bool
	validated map[string]bool
}

func (c *Checker) check(ctx context.Context, ip netip.Addr, domain, sender, helo, identity, guess string) Outcome {
	ip = ip.Unmap() // §5: an IPv4-mapped IPv6 address is an IPv4 address
	domain = trimDot(domain)
	local, senderDomain := "postmaster", domain
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		if i > 0 {
			local = sender[:i]
		}
		senderDomain = sender[i+1:]
	} else if sender != "" {
		senderDomain = sender
	}
	if i := strings.LastIndexByte(sender, '@'); i <= 0 {
		sender = local + "@" + senderDomain // §4.3: "postmaster" for a missing local part
	}
	receiver := c.Receiver
	if receiver == "" {
		receiver = "unknown"
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	out := Outcome{Identity: identity, Domain: domain, Sender: sender, IP: ip, Receiver: receiver}
	switch {
	case !ip.IsValid():
		out.Result, out.Problem = PermError, "invalid client IP address"
		return out
	case c.DNS == nil:
		out.Result, out.Problem = TempError, "no DNS resolver configured"
		return out
	case !validIdentityDomain(domain):
		// §4.3: a malformed or single-label domain gives none.
		out.Result, out.Problem = None, fmt.Sprintf("%+q is not a valid domain name", domain)
		return out
	}
	e := &eval{
		ctx: ctx,
		dns: c.DNS,
		lim: c.Limits.withDefaults(),
		vars: macroVars{
			sender: sender, local: local, senderDomain: senderDomain,
			helo: helo, receiver: receiver, ip: ip, clock: now,
		},
	}
	v := e.evalDomain(domain, guess, false)
	out.Result, out.Mechanism, out.Problem = v.result, v.mech, v.problem
	out.Lookups, out.Voids, out.Guessed = e.lookups, e.voids, e.guessed
	if v.result == Fail && v.exp != nil {
		out.Explanation = e.explain(v.exp)
	}
	return out
}

// lookup is the outcome of one query, classified for SPF.
type lookup struct {
	ans  *resolver.Answer // nil when the name does not exist or cannot be queried
	temp error            // a temporary failure
}

// void reports whether the answer is NXDOMAIN or NODATA (§4.6.4).
func (l lookup) void() bool { return l.temp == nil && (l.ans == nil || len(l.ans.Records) == 0) }

func (e *eval) query(name string, t resolver.Type) lookup {
	ans, err := e.dns.Query(e.ctx, name, t)
	switch {
	case err == nil:
		if ans == nil || ans.NXDomain() { // nil: a broken Querier; treat as no data
			return lookup{}
		}
		return lookup{ans: ans}
	case errors.Is(err, resolver.ErrBadName) && !errors.Is(err, resolver.ErrTemporary):
		return lookup{} // no query can be made: the name does not exist
	default:
		return lookup{temp: err}
	}
}

// records returns the records of type t in an answer (the answer holds
// only those, but a querier might add others).
func (l lookup) records(t resolver.Type) []resolver.Record {
	if l.ans == nil {
		return nil
	}
	recs := l.ans.Records
	for _, r := range recs {
		if r.Type != t {
			var out []resolver.Record
			for _, r := range recs {
				if r.Type == t {
					out = append(out, r)
				}
			}
			return out
		}
	}
	return recs
}

// countLookup counts a DNS-querying term (§4.6.4).
func (e *eval) countLookup() *abort {
	e.lookups++
	if e.lookups > e.lim.Lookups {
		return permErr("more than %d DNS-querying terms (RFC 7208 §4.6.4)", e.lim.Lookups)
	}
	if err := e.ctx.Err(); err != nil {
		return &abort{TempError, "check abandoned: " + err.Error()}
	}
	return nil
}

// countVoid counts a void lookup (§4.6.4).
func (e *eval) countVoid() *abort {
	e.voids++
	if e.voids > e.lim.Voids {
		return permErr("more than %d void DNS lookups (RFC 7208 §4.6.4)", e.lim.Voids)
	}
	return nil
}

// fetchRecord retrieves the SPF record of domain (§4.4, §4.5). ok is false
// when v holds the result instead: none, temperror or permerror.
// countVoid counts an NXDOMAIN/NODATA answer as a void lookup (include).
func (e *eval) fetchRecord(domain string, countVoid bool) (txt string, v verdict, ok bool) {
	l := e.query(domain, resolver.TypeTXT)
	if l.temp != nil {
		return "", verdict{result: TempError, problem: fmt.Sprintf("DNS lookup of %s TXT failed: %v", domain, l.temp)}, false
	}
	if l.void() && countVoid {
		if a := e.countVoid(); a != nil {
			return "", verdict{result: a.result, problem: a.problem}, false
		}
	}
	var found []string
	for _, r := range l.records(resolver.TypeTXT) {
		if s := strings.Join(r.TXT, ""); isSPFRecord(s) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return "", verdict{result: None, problem: fmt.Sprintf("%s publishes no SPF record", domain)}, false
	case 1:
		return found[0], verdict{}, true
	}
	return "", verdict{result: PermError, problem: fmt.Sprintf("%s publishes %d SPF records (RFC 7208 §4.5)", domain, len(found))}, false
}

// evalDomain is check_host() for one domain: fetch, parse, evaluate.
func (e *eval) evalDomain(domain, guess string, include bool) verdict {
	txt, v, ok := e.fetchRecord(domain, include)
	if !ok {
		if v.result != None || guess == "" {
			return v
		}
		txt, e.guessed = guess, true
	}
	rec, err := parseRecordCached(txt)
	if err != nil {
		var se *SyntaxError
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Reason
			if se.Term != "" {
				msg = fmt.Sprintf("%+q: %s", se.Term, se.Reason)
			}
		}
		return verdict{result: PermError, problem: fmt.Sprintf("invalid SPF record at %s: %s", domain, msg)}
	}
	return e.evalRecord(rec, domain)
}

// evalRecord evaluates a parsed record for domain (§4.6.2, §4.7, §6.1).
func (e *eval) evalRecord(rec *Record, domain string) verdict {
	for i := range rec.Directives {
		d := &rec.Directives[i]
		match, a := e.evalMechanism(d, domain)
		if a != nil {
			return verdict{result: a.result, problem: a.problem}
		}
		if match {
			v := verdict{result: d.Qualifier, mech: d.Text}
			if v.result == Fail && rec.exp != nil {
				v.exp = &expSource{spec: rec.exp, domain: domain}
			}
			return v
		}
	}
	if rec.redirect == nil {
		return verdict{result: Neutral, mech: "default"} // §4.7
	}
	if a := e.countLookup(); a != nil {
		return verdict{result: a.result, problem: a.problem}
	}
	target, ok := e.expandDomain(rec.redirect, domain)
	if !ok {
		return verdict{result: PermError, problem: fmt.Sprintf("redirect=%s does not name a valid domain (RFC 7208 §6.1)", rec.Redirect)}
	}
	v := e.evalDomain(target, "", false)
	if v.result == None {
		return verdict{result: PermError, problem: fmt.Sprintf("redirect target %s publishes no SPF record (RFC 7208 §6.1)", target)}
	}
	return v
}

func (e *eval) expandDomain(ms macroString, domain string) (string, bool) {
	e.vars.domain = domain
	return e.vars.expandDomainP(ms, e.pMacro)
}

// target returns the target-name of a mechanism (§4.8).
func (e *eval) target(d *Directive, domain string) (string, bool) {
	if d.domain == nil {
		return domain, true
	}
	return e.expandDomain(d.domain, domain)
}

// evalMechanism reports whether d matches (§5).
func (e *eval) evalMechanism(d *Directive, domain string) (bool, *abort) {
	switch d.Mechanism {
	case MechAll:
		return true, nil
	case MechIP4, MechIP6:
		return d.Prefix.Contains(e.vars.ip), nil
	}
	if a := e.countLookup(); a != nil {
		return false, a
	}
	target, ok := e.target(d, domain)
	if d.Mechanism == MechInclude {
		if !ok {
			return false, permErr("include:%s does not name a valid domain (RFC 7208 §5.2)", d.Domain)
		}
		return e.include(d, target)
	}
	if !ok {
		// An invalid target-name can name no host: no match (§4.8).
		return false, nil
	}
	switch d.Mechanism {
	case MechA:
		l := e.query(target, e.addrType())
		return e.matchAddrs(l, target, d, true)
	case MechMX:
		return e.mx(d, target)
	case MechPTR:
		return e.ptr(target)
	case MechExists:
		l := e.query(target, resolver.TypeA) // always A (§5.7)
		if l.temp != nil {
			return false, tempErr(target, resolver.TypeA, l.temp)
		}
		if l.void() {
			return false, e.countVoid()
		}
		return len(l.records(resolver.TypeA)) > 0, nil
	}
	return false, permErr("unknown mechanism %q", d.Mechanism) // not reached: the parser rejects it
}

func tempErr(name string, t resolver.Type, err error) *abort {
	return &abort{TempError, fmt.Sprintf("DNS lookup of %s %s failed: %v", name, t, err)}
}

// addrType is A for an IPv4 client and AAAA for IPv6 (§5).
func (e *eval) addrType() resolver.Type {
	if e.vars.ip.Is4() {
		return resolver.TypeA
	}
	return resolver.TypeAAAA
}

// matchAddrs reports whether an address answer holds an address in the
// client's network; counting decides whether a void answer counts.
func (e *eval) matchAddrs(l lookup, name string, d *Directive, counting bool) (bool, *abort) {
	t := e.addrType()
	if l.temp != nil {
		return false, tempErr(name, t, l.temp)
	}
	if l.void() {
		if counting {
			return false, e.countVoid()
		}
		return false, nil
	}
	bits := d.CIDR4
	if t == resolver.TypeAAAA {
		bits = d.CIDR6
	}
	for _, r := range l.records(t) {
		addr := r.IP
		if t == resolver.TypeA {
			addr = addr.Unmap()
		}
		if !addr.IsValid() || addr.Is4() != e.vars.ip.Is4() {
			continue
		}
		if p, err := addr.Prefix(bits); err == nil && p.Contains(e.vars.ip) {
			return true, nil
		}
	}
	return false, nil
}

// include evaluates include:target (§5.2).
func (e *eval) include(d *Directive, target string) (bool, *abort) {
	v := e.evalDomain(target, "", true)
	switch v.result {
	case Pass:
		return true, nil
	case Fail, SoftFail, Neutral:
		return false, nil
	case TempError:
		return false, &abort{TempError, v.problem}
	case None:
		return false, permErr("include:%s: %s (RFC 7208 §5.2)", d.Domain, v.problem)
	}
	return false, &abort{PermError, v.problem}
}

// mx evaluates the mx mechanism (§5.4).
func (e *eval) mx(d *Directive, target string) (bool, *abort) {
	l := e.query(target, resolver.TypeMX)
	if l.temp != nil {
		return false, tempErr(target, resolver.TypeMX, l.temp)
	}
	if l.void() {
		return false, e.countVoid()
	}
	mxs := l.records(resolver.TypeMX)
	if len(mxs) > e.lim.MXNames {
		return false, permErr("%s has %d MX records, more than %d (RFC 7208 §4.6.4)", target, len(mxs), e.lim.MXNames)
	}
	for _, mx := range mxs {
		name := normalizeTarget(mx.Target)
		if name == "" || name == "." {
			continue // null MX (RFC 7505): no host
		}
		match, a := e.matchAddrs(e.query(name, e.addrType()), name, d, false)
		if a != nil || match {
			return match, a
		}
	}
	return false, nil
}

// reverseName is the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip netip.Addr) string {
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa", a[3], a[2], a[1], a[0])
		return b.String()
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hex[a[i]&15])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// ptrLookup makes the PTR query once per check and keeps the first
// PTRNames names (§4.6.4, §5.5). A temporary failure leaves no names.
func (e *eval) ptrLookup() {
	if e.ptrDone {
		return
	}
	e.ptrDone = true
	l := e.query(reverseName(e.vars.ip), resolver.TypePTR)
	if l.temp != nil {
		return
	}
	e.ptrVoid = l.void()
	for _, r := range l.records(resolver.TypePTR) {
		if len(e.ptrNames) == e.lim.PTRNames {
			break
		}
		if n := normalizeTarget(r.Target); n != "" {
			e.ptrNames = append(e.ptrNames, n)
		}
	}
}

// validate reports whether a PTR name has an address record equal to the
// client's address; a DNS error skips the name (§5.5). At most one query
// per name.
func (e *eval) validate(name string) bool {
	if ok, seen := e.validated[name]; seen {
		return ok
	}
	if e.validated == nil {
		e.validated = map[string]bool{}
	}
	ok := false
	t := e.addrType()
	l := e.query(name, t)
	for _, r := range l.records(t) {
		addr := r.IP
		if t == resolver.TypeA {
			addr = addr.Unmap()
		}
		if addr == e.vars.ip {
			ok = true
			break
		}
	}
	e.validated[name] = ok
	return ok
}

// isSubdomain reports whether name is domain or below it, ignoring case.
func isSubdomain(name, domain string) bool {
	name, domain = ascii.Lower(name), ascii.Lower(domain)
	return name == domain || strings.HasSuffix(name, "."+domain)
}

// ptr evaluates the ptr mechanism (§5.5). Only names at or below the
// target can match, so only those are validated.
func (e *eval) ptr(target string) (bool, *abort) {
	e.ptrLookup()
	if e.ptrVoid {
		return false, e.countVoid()
	}
	for _, n := range e.ptrNames {
		if isSubdomain(n, target) && e.validate(n) {
			return true, nil
		}
	}
	return false, nil
}

// pMacro is %{p} (§7.3): a validated name of the client, preferring the
// domain itself, then a name below it, then any; "unknown" if none.
func (e *eval) pMacro(domain string) string {
	e.ptrLookup()
	for _, n := range e.ptrNames {
		if ascii.EqualFold(n, domain) && e.validate(n) {
			return n
		}
	}
	for _, n := range e.ptrNames {
		if isSubdomain(n, domain) && e.validate(n) {
			return n
		}
	}
	for _, n := range e.ptrNames {
		if e.validate(n) {
			return n
		}
	}
	return "unknown"
}

// explain computes the explanation of a fail (§6.2). Any problem, a macro
// error in the domain-spec, a DNS error, no record or several, or an
// invalid explanation-string, means no explanation. The lookup counts
// toward no limit.
func (e *eval) explain(src *expSource) string {
	name, ok := e.expandDomain(src.spec, src.domain)
	if !ok {
		return ""
	}
	l := e.query(name, resolver.TypeTXT)
	recs := l.records(resolver.TypeTXT)
	if l.temp != nil || len(recs) != 1 {
		return ""
	}
	ms, _, _, err := parseMacroString(strings.Join(recs[0].TXT, ""), true)
	if err != nil {
		return ""
	}
	e.vars.domain = src.domain
	return e.vars.expandTextP(ms, e.pMacro)
}
