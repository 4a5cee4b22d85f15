package dmarc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/mailsidecar/sidecar/resolver"
)

// Mode is how DMARC Policy Records and Organizational Domains are found.
type Mode int

const (
	// TreeWalk is RFC 9989's DNS Tree Walk (§4.10): at most 8 queries
	// per walk, psd= flags, no list. The default.
	TreeWalk Mode = iota
	// PSLMode is RFC 7489's: the Organizational Domain is the public
	// suffix plus one label (§3.2), the record is looked up at the Author
	// Domain and then at its Organizational Domain (§6.6.3), and several
	// records at one name end discovery.
	PSLMode
)

func (m Mode) String() string {
	if m == PSLMode {
		return "psl"
	}
	return "treewalk"
}

// ParseMode parses the dmarc_discovery option: "treewalk" (also "tree",
// "dns") or "psl", ignoring case.
func ParseMode(s string) (Mode, bool) {
	switch strings.ToLower(s) {
	case "treewalk", "tree-walk", "tree", "dns":
		return TreeWalk, true
	case "psl":
		return PSLMode, true
	}
	return 0, false
}

// Evaluator evaluates DMARC for messages. Its fields must not change
// while it is in use; it is safe for concurrent use.
type Evaluator struct {
	// DNS answers the TXT queries at _dmarc names and the existence
	// queries for np=.
	DNS resolver.Querier
	// Discovery chooses the RFC 9989 tree walk (default) or RFC 7489's
	// Public Suffix List.
	Discovery Mode
	// PSL is the list for PSLMode; nil means EmbeddedPSL().
	PSL *PSL
	// Rand returns a uniform integer in [0, n): the sampling of pct=.
	// nil means math/rand/v2.
	Rand func(n int) int
}

// Input is what DMARC evaluates: the Author Domain and the results of
// the underlying checks.
type Input struct {
	// FromDomain is the Author Domain, from FromDomain. When it is empty
	// or FromErr is set the outcome is nofrom.
	FromDomain string
	FromErr    error
	// SPF is the SPF check of the MAIL FROM identity (for the null
	// sender, the HELO identity, RFC 9989 §3.2.4).
	SPF SPFResult
	// DKIM holds one entry per DKIM signature result.
	DKIM []DKIMResult
}

// SPFResult is an SPF result: the RFC 7208 token ("pass", "fail", …)
// and the domain checked.
type SPFResult struct {
	Result string
	Domain string
}

// DKIMResult is one DKIM signature result: the RFC 8601 token, d= and s=.
type DKIMResult struct {
	Result   string
	Domain   string
	Selector string
}

// Outcome is the result of a DMARC evaluation, with everything Exim's
// variables, Authentication-Results and the history file need.
type Outcome struct {
	Result     Result // the A-R result; "" when Status is off
	Status     Status // Exim's $dmarc_status
	StatusText string // Exim's $dmarc_status_text: a short human-readable account
	// FromDomain is the Author Domain ("" for nofrom).
	FromDomain string
	// UsedDomain is the domain whose record was used, or the Author
	// Domain when there is none ($dmarc_used_domain, history pdomain).
	UsedDomain string
	// PolicyDomain is where the applied record was found; "" without one.
	PolicyDomain string
	// OrgDomain is the Author Domain's Organizational Domain, when it
	// was needed and found.
	OrgDomain string
	// Policy is the declared policy that applies to the Author Domain
	// (p=, sp= or np=; $dmarc_domain_policy); "" without a record.
	// PolicyTag names the tag it came from.
	Policy    Policy
	PolicyTag string
	// Disposition is the policy to apply after t=y and pct= sampling
	// (RFC 8601 policy.dmarc): none on pass and without a record.
	Disposition Policy
	// Action is what the receiver did about the message (OpenDMARC's
	// "dis=" and the history's action): set it before rendering when the
	// message was quarantined or rejected; "" means none (delivered).
	Action Policy
	// Testing is true when t=y turned Disposition one level down, and
	// Sampled false when pct= sampling did.
	Testing bool
	Sampled bool
	// AlignSPF and AlignDKIM say whether an SPF pass or a DKIM pass
	// aligned with the Author Domain; AlignedDKIM is the d= of the first
	// aligned DKIM pass.
	AlignSPF    bool
	AlignDKIM   bool
	AlignedDKIM string
	// Record is the applied record (with p=none when a record without a
	// valid p= was taken as p=none); nil without one. It is shared with
	// other evaluations of the same record text: read it, never modify it
	// (copy a slice before changing it).
	Record *Record
	// Err is the cause of temperror (a DNS error) or nofrom (a FromDomain
	// error).
	Err error
}

// Disabled returns the outcome of a message whose DMARC verification is
// turned off (control = dmarc_disable_verify): status off.
func Disabled() Outcome {
	return Outcome{Status: StatusOff, StatusText: "DMARC verification disabled"}
}

// Evaluate applies DMARC to a message (RFC 9989 §5.3): it finds the
// policy record of the Author Domain, checks SPF and DKIM identifier
// alignment, chooses the policy (p=, sp=, np=) and applies t= and pct=.
// DNS queries run under ctx; a temporary DNS failure gives temperror.
func (e *Evaluator) Evaluate(ctx context.Context, in Input) Outcome {
	switch {
	case in.FromErr != nil:
		return noFrom(in.FromErr)
	case in.FromDomain == "":
		return noFrom(ErrNoFrom)
	}
	from, err := normalizeDomain(in.FromDomain)
	if err != nil {
		return noFrom(fmt.Errorf("%w: %w", ErrBadFrom, err))
	}
	o := Outcome{FromDomain: from, UsedDomain: from, Disposition: PolicyNone}
	if e.DNS == nil {
		return o.tempError(errNoResolver)
	}
	w := &walker{ctx: ctx, dns: e.DNS}

	// Policy discovery.
	d, err := e.discover(w, from)
	if err != nil {
		return o.tempError(err)
	}
	o.OrgDomain = d.org
	if d.record == nil {
		o.Result, o.Status = None, StatusNoRecord
		o.StatusText = "No DMARC record"
		if d.unusable {
			o.StatusText = "No usable DMARC record (no valid p= and no rua=) at " + d.domain
			o.UsedDomain = d.domain
		}
		return o
	}
	o.Record, o.PolicyDomain, o.UsedDomain = d.record, d.domain, d.domain
	if err := choosePolicy(w, from, &o); err != nil {
		return o.tempError(err)
	}
	if err := e.alignAll(w, from, in, &o); err != nil {
		return o.tempError(err)
	}
	if o.AlignSPF || o.AlignDKIM {
		return o.pass()
	}
	return e.fail(o)
}

// choosePolicy sets the declared policy that applies: p= for the Author
// Domain itself, sp= or np= for a subdomain of the policy domain (RFC 9989
// §4.10.1), the existence query being made only when np= would differ.
func choosePolicy(w *walker, from string, o *Outcome) error {
	rec := o.Record
	o.Policy, o.PolicyTag = rec.Policy, "p"
	if o.PolicyDomain == from {
		return nil
	}
	if rec.SubdomainPolicy != "" {
		o.Policy, o.PolicyTag = rec.SubdomainPolicy, "sp"
	}
	if rec.NonexistentPolicy == "" || rec.NonexistentPolicy == o.Policy {
		return nil
	}
	exists, err := w.exists(from)
	if err != nil {
		return err
	}
	if !exists {
		o.Policy, o.PolicyTag = rec.NonexistentPolicy, "np"
	}
	return nil
}

// alignAll checks the SPF pass and the DKIM passes for alignment (RFC 9989
// §4.4, §4.10.2). A DNS failure matters only when nothing aligned.
func (e *Evaluator) alignAll(w *walker, from string, in Input, o *Outcome) error {
	var alignErr error
	if strings.EqualFold(in.SPF.Result, "pass") && in.SPF.Domain != "" {
		o.AlignSPF, alignErr = e.aligned(w, from, o, in.SPF.Domain, o.Record.SPFAlignment)
	}
	for _, k := range in.DKIM {
		if o.AlignDKIM || !strings.EqualFold(k.Result, "pass") || k.Domain == "" {
			continue
		}
		ok, err := e.aligned(w, from, o, k.Domain, o.Record.DKIMAlignment)
		if ok {
			o.AlignDKIM, o.AlignedDKIM = true, strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		} else if err != nil && alignErr == nil {
			alignErr = err
		}
	}
	if o.AlignSPF || o.AlignDKIM {
		return nil
	}
	return alignErr
}

// pass completes a DMARC pass: Exim's accept.
func (o Outcome) pass() Outcome {
	o.Result, o.Status = Pass, StatusAccept
	switch {
	case o.AlignSPF && o.AlignDKIM:
		o.StatusText = "Accept (aligned SPF and DKIM pass)"
	case o.AlignSPF:
		o.StatusText = "Accept (aligned SPF pass)"
	default:
		o.StatusText = "Accept (aligned DKIM pass, d=" + o.AlignedDKIM + ")"
	}
	return o
}

// fail completes a DMARC fail: the policy to apply is the declared one,
// one level down for t=y (RFC 9989 §4.7) or when pct= sampling leaves the
// message out (RFC 7489 §6.6.4).
func (e *Evaluator) fail(o Outcome) Outcome {
	rec := o.Record
	o.Result = Fail
	o.Disposition = o.Policy
	detail := o.PolicyTag + "=" + string(o.Policy)
	switch {
	case rec.Testing && o.Policy != PolicyNone:
		o.Testing = true
		o.Disposition = o.Policy.downgrade()
		detail += ", testing (t=y)"
	case rec.HasPercent && rec.Percent < 100 && o.Policy != PolicyNone:
		o.Sampled = e.intn(100) < rec.Percent
		if !o.Sampled {
			o.Disposition = o.Policy.downgrade()
			detail += fmt.Sprintf(", not sampled (pct=%d)", rec.Percent)
		}
	default:
		o.Sampled = true
	}
	switch o.Disposition {
	case PolicyReject:
		o.Status, o.StatusText = StatusReject, "Reject ("+detail+")"
	case PolicyQuarantine:
		o.Status, o.StatusText = StatusQuarantine, "Quarantine ("+detail+")"
	default:
		o.Status, o.StatusText = StatusNone, "None, accept ("+detail+")"
	}
	return o
}

// noFrom is the outcome without an Author Domain: Exim's nofrom.
func noFrom(err error) Outcome {
	return Outcome{Result: PermError, Status: StatusNoFrom, Disposition: PolicyNone,
		StatusText: "No From: domain found (" + err.Error() + ")", Err: err}
}

var errNoResolver = errors.New("no DNS resolver configured")

func (o Outcome) tempError(err error) Outcome {
	o.Result, o.Status, o.Err = TempError, StatusTempError, err
	o.StatusText = "Temporary error: " + err.Error()
	o.Disposition = PolicyNone
	return o
}

func (e *Evaluator) intn(n int) int {
	if e.Rand != nil {
		return e.Rand(n)
	}
	return rand.IntN(n)
}

func (e *Evaluator) psl() *PSL {
	if e.PSL != nil {
		return e.PSL
	}
	return embedded
}

// discovery is where policy discovery ended.
type discovery struct {
	domain   string  // where the record was found
	record   *Record // the usable record; nil when none
	unusable bool    // a record was found but has no valid p= and no rua=
	org      string  // the Author Domain's Organizational Domain, if known
}

// discover finds the DMARC Policy Record for the Author Domain.
func (e *Evaluator) discover(w *walker, from string) (discovery, error) {
	if e.Discovery == PSLMode {
		return e.discoverPSL(w, from)
	}
	// RFC 9989 §4.10.1: the Author Domain's own record, else the record
	// of its Organizational Domain, else that of its Public Suffix
	// Domain. The walk that finds the latter two also gives the
	// Organizational Domain; with a record at the Author Domain that walk
	// waits until alignment needs it.
	var d discovery
	pick := func(domain string, rec *Record) (discovery, error) {
		d.domain = domain
		if r, ok := rec.usable(); ok {
			d.record = r
		} else {
			d.unusable = true
		}
		return d, nil
	}
	l, err := w.lookup(from)
	if err != nil {
		return d, err
	}
	if l.record != nil {
		return pick(from, l.record)
	}
	found, err := w.walk(from)
	if err != nil {
		return d, err
	}
	d.org = selectOrg(from, found)
	for _, f := range found {
		if f.domain == d.org {
			return pick(f.domain, f.record)
		}
	}
	for _, f := range found {
		if f.record.PSD == PSDYes {
			return pick(f.domain, f.record)
		}
	}
	return d, nil
}

// orgDomain returns the Author Domain's Organizational Domain, walking
// the tree if discovery did not.
func (e *Evaluator) orgDomain(w *walker, from string, o *Outcome) (string, error) {
	if o.OrgDomain != "" {
		return o.OrgDomain, nil
	}
	found, err := w.walk(from)
	if err != nil {
		return "", err
	}
	o.OrgDomain = selectOrg(from, found)
	return o.OrgDomain, nil
}

// discoverPSL is RFC 7489 §6.6.3: the Author Domain's record, else its
// Organizational Domain's; several records at a name end discovery.
func (e *Evaluator) discoverPSL(w *walker, from string) (discovery, error) {
	org := e.psl().OrgDomain(from)
	if org == "" {
		org = from
	}
	d := discovery{org: org}
	for _, name := range []string{from, org} {
		l, err := w.lookup(name)
		if err != nil {
			return d, err
		}
		if l.multiple {
			return d, nil
		}
		if l.record != nil {
			d.domain = name
			if rec, ok := l.record.usable(); ok {
				d.record = rec
			} else {
				d.unusable = true
			}
			return d, nil
		}
		if org == from {
			break
		}
	}
	return d, nil
}

// aligned reports whether an authenticated domain is aligned with the
// Author Domain: identical (strict), or with the same Organizational
// Domain (relaxed).
func (e *Evaluator) aligned(w *walker, from string, o *Outcome, id string, mode Alignment) (bool, error) {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == from {
		return true, nil
	}
	if mode == AlignStrict || !validDomain(id) {
		return false, nil
	}
	if e.Discovery == PSLMode {
		p := e.psl()
		orgID := p.OrgDomain(id)
		if orgID == "" {
			orgID = id
		}
		return orgID == o.OrgDomain, nil
	}
	org, err := e.orgDomain(w, from, o)
	if err != nil {
		return false, err
	}
	// An Organizational Domain is always the domain itself or one of its
	// parents, so an identifier outside the Author Domain's
	// Organizational Domain cannot align: no queries needed.
	if id != org && !strings.HasSuffix(id, "."+org) {
		return false, nil
	}
	found, err := w.walk(id)
	if err != nil {
		return false, err
	}
	return selectOrg(id, found) == o.OrgDomain, nil
}

// selectOrg picks the Organizational Domain of start from the records a
// tree walk found, longest name first (RFC 9989 §4.10.2): a psd=n record
// is it; a psd=y record other than start's makes it the name one label
// below; otherwise the record with the fewest labels; without records,
// start itself.
func selectOrg(start string, found []foundRecord) string {
	for _, f := range found {
		switch {
		case f.record.PSD == PSDNo:
			return f.domain
		case f.record.PSD == PSDYes && f.domain != start:
			return lastLabels(start, labelCount(f.domain)+1)
		}
	}
	if len(found) == 0 {
		return start
	}
	return found[len(found)-1].domain
}

func labelCount(d string) int { return strings.Count(d, ".") + 1 }

// lastLabels returns the last n labels of d.
func lastLabels(d string, n int) string {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] == '.' {
			n--
			if n == 0 {
				return d[i+1:]
			}
		}
	}
	return d
}

// maxWalk is the number of labels above which the tree walk jumps
// (RFC 9989 §4.10 step 4): at most 8 queries per walk.
const maxWalk = 8

// walker makes the DNS queries of one evaluation, each at most once.
type walker struct {
	ctx context.Context
	dns resolver.Querier
	// The TXT queries made: a few, the walks are short; the first in
	// room (no pointer into the walker, which can then stay on the
	// stack), any others in more.
	n    int
	room [4]memoEntry
	more []memoEntry
}

type memoEntry struct {
	domain string
	l      lookup
}

// memoized returns the lookup already made for domain, or nil.
func (w *walker) memoized(domain string) *lookup {
	for i := range w.n {
		if w.room[i].domain == domain {
			return &w.room[i].l
		}
	}
	for i := range w.more {
		if w.more[i].domain == domain {
			return &w.more[i].l
		}
	}
	return nil
}

// lookup is the outcome of a TXT query at _dmarc.<domain>.
type lookup struct {
	record   *Record // the single DMARC record; nil when none or several
	multiple bool    // several DMARC records
	exists   bool    // the _dmarc name exists, so the domain does
	err      error
}

// foundRecord is a DMARC record found by a tree walk.
type foundRecord struct {
	domain string
	record *Record
}

// lookup queries _dmarc.<domain> for TXT records and keeps those that
// start with v=DMARC1 (RFC 9989 §4.10 step 2).
func (w *walker) lookup(domain string) (*lookup, error) {
	if l := w.memoized(domain); l != nil {
		return l, l.err
	}
	l := w.remember(domain, w.query(domain))
	return l, l.err
}

// remember keeps the lookup of domain and returns where it is kept.
func (w *walker) remember(domain string, l lookup) *lookup {
	if w.n < len(w.room) {
		w.room[w.n] = memoEntry{domain, l}
		w.n++
		return &w.room[w.n-1].l
	}
	w.more = append(w.more, memoEntry{domain, l})
	return &w.more[len(w.more)-1].l
}

// query makes the lookup of domain: the TXT records at _dmarc.<domain>
// that start with v=DMARC1 and parse.
func (w *walker) query(domain string) lookup {
	var l lookup
	name := "_dmarc." + domain
	ans, err := w.dns.Query(w.ctx, name, resolver.TypeTXT)
	switch {
	case errors.Is(err, resolver.ErrBadName):
		return l
	case err != nil:
		l.err = fmt.Errorf("DMARC record lookup at %s: %w", name, err)
		return l
	}
	l.exists = ans.Rcode == resolver.RcodeSuccess
	n := 0
	for _, rr := range ans.Records {
		txt := strings.Join(rr.TXT, "")
		if !isDMARC(txt) {
			continue
		}
		if rec, err := parseRecordCached(txt); err == nil {
			n++
			l.record = rec
		}
	}
	if n > 1 { // several records count as none
		l.record, l.multiple = nil, true
	}
	return l
}

// walk is the DNS Tree Walk of RFC 9989 §4.10 from start: it returns the
// single DMARC records found, longest name first, and stops at a record
// with psd=y or psd=n. Names with several records count as none.
func (w *walker) walk(start string) ([]foundRecord, error) {
	var found []foundRecord
	target := start
	for {
		l, err := w.lookup(target)
		if err != nil {
			return nil, err
		}
		if l.record != nil {
			found = append(found, foundRecord{target, l.record})
			if l.record.PSD == PSDYes || l.record.PSD == PSDNo {
				return found, nil
			}
		}
		n := labelCount(target)
		if n <= 1 {
			return found, nil
		}
		if n > maxWalk-1 && target == start {
			target = lastLabels(target, maxWalk-1)
		} else {
			target = target[strings.IndexByte(target, '.')+1:]
		}
	}
}

// exists reports whether a domain exists (RFC 9989 §3.2.13, RFC 8020): a
// NOERROR answer for _dmarc.<domain> already proves it; otherwise an A
// query answered NXDOMAIN says it does not.
func (w *walker) exists(domain string) (bool, error) {
	if l := w.memoized(domain); l != nil && l.err == nil && l.exists {
		return true, nil
	}
	ans, err := w.dns.Query(w.ctx, domain, resolver.TypeA)
	switch {
	case errors.Is(err, resolver.ErrBadName):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("existence check of %s: %w", domain, err)
	}
	// A CNAME at the name makes it exist, whatever its target's rcode.
	return !ans.NXDomain() || len(ans.CNAME) > 0, nil
}
