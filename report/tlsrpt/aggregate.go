package tlsrpt

import (
	"io"
	"sort"
	"strings"
	"time"
)

// Reporter is who sends the reports.
type Reporter struct {
	OrgName string // organization-name
	Contact string // contact-info
	Domain  string // the sending domain of the file name
}

// Aggregator counts sessions per policy domain, UTC day and policy.
// Policy lines are expected before the sessions they govern (the policy
// socket answers before the MTA connects); sessions of a domain whose
// policy line was not seen yet that day wait, counted, until Reports.
type Aggregator struct {
	Begin, End time.Time // sessions outside [Begin, End) are passed over; zero: no bound
	// Ref dates traditional syslog timestamps, which have no year
	// (default: now).
	Ref time.Time
	// Local is the zone of Exim's timestamps, which have none unless
	// log_timezone is set (default: time.Local, the zone Exim logs in).
	Local *time.Location

	policies map[string]PolicyLine // domain: latest policy line
	firstOf  map[dayKey]PolicyLine // the first policy line of a domain's day
	counts   map[dayKey]map[string]*policyCount
	waiting  map[dayKey]map[sessionKey]int64
}

type dayKey struct {
	domain string
	day    string // 2006-01-02, UTC
}

type sessionKey struct {
	mx, ip, level string
	result        ResultType
	reason        string
}

type policyCount struct {
	line     PolicyLine
	summary  Summary
	failures map[sessionKey]int64
}

// maxDistinct bounds the distinct failure details kept per policy; the
// rest are counted in the summary only.
const maxDistinct = 10000

// Read reads one log: Postfix's smtp lines, Exim's main log (its own
// file or through syslog) and the policy socket's lines, each line
// recognized by its format.
func (a *Aggregator) Read(r io.Reader) error {
	if a.policies == nil {
		a.policies, a.firstOf = map[string]PolicyLine{}, map[dayKey]PolicyLine{}
		a.counts, a.waiting = map[dayKey]map[string]*policyCount{}, map[dayKey]map[sessionKey]int64{}
	}
	ref := a.Ref
	if ref.IsZero() {
		ref = time.Now()
	}
	pf := newPostfixReader(a.Add)
	loc := a.Local
	if loc == nil {
		loc = time.Local
	}
	ex := newEximReader(loc, a.Add)
	return forEachLine(r, func(b []byte) {
		line := string(b)
		t, prog, pid, msg, ok := syslogPrefix(line, ref)
		switch {
		case ok && (strings.HasSuffix(prog, "/smtp") || prog == "smtp"):
			pf.line(t, pid, msg)
			return
		case ok && (prog == "exim" || prog == "exim4"):
			ex.syslogLine(t, msg)
			return
		case !ok && ex.logLine(line):
			return
		}
		if pl, ok := parsePolicyLine(line, t); ok {
			a.AddPolicy(pl)
			if pl.STSError != "" {
				// The policy socket could not fetch the announced
				// MTA-STS policy: one failed session under the policy
				// the MTA was given (RFC 8460 §4.3.2.2).
				a.Add(Session{Time: pl.Time, Domain: pl.Domain, Result: pl.STSResult, Reason: pl.STSError})
			}
		}
	})
}

// AddPolicy records a policy line.
func (a *Aggregator) AddPolicy(pl PolicyLine) {
	a.policies[pl.Domain] = pl
	k := dayKey{pl.Domain, pl.Time.UTC().Format(time.DateOnly)}
	if _, ok := a.firstOf[k]; !ok {
		a.firstOf[k] = pl
	}
}

// Add counts a session under the domain's latest policy.
func (a *Aggregator) Add(s Session) {
	if s.Domain == "" || (!a.Begin.IsZero() && s.Time.Before(a.Begin)) || (!a.End.IsZero() && !s.Time.Before(a.End)) {
		return
	}
	k := dayKey{s.Domain, s.Time.UTC().Format(time.DateOnly)}
	sk := sessionKey{s.MXHost, s.IP, s.Level, s.Result, s.Reason}
	pl, ok := a.policies[s.Domain]
	if !ok || pl.Time.UTC().Format(time.DateOnly) != k.day && pl.Time.After(s.Time) {
		w := a.waiting[k]
		if w == nil {
			w = map[sessionKey]int64{}
			a.waiting[k] = w
		}
		if _, ok := w[sk]; ok || len(w) < maxDistinct {
			w[sk]++
		}
		return
	}
	a.count(k, pl, sk, 1)
}

func (a *Aggregator) count(k dayKey, pl PolicyLine, sk sessionKey, n int64) {
	m := a.counts[k]
	if m == nil {
		m = map[string]*policyCount{}
		a.counts[k] = m
	}
	id := string(pl.Type) + "\x00" + strings.Join(pl.Strings, "\x00")
	pc := m[id]
	if pc == nil {
		pc = &policyCount{line: pl, failures: map[sessionKey]int64{}}
		m[id] = pc
	}
	res := sk.result
	if res == "" && pl.Type == PolicySTS && (sk.level == "Untrusted" || sk.level == "Anonymous") {
		// Under a testing policy the MTA did not check the certificate;
		// RFC 8460 §4.1 counts what would have failed.
		res, sk.reason = CertificateNotTrusted, sk.level+" TLS connection"
	}
	if res == "" {
		pc.summary.Successful += n
		return
	}
	pc.summary.Failure += n
	fk := sessionKey{mx: sk.mx, ip: sk.ip, result: res, reason: sk.reason}
	if _, ok := pc.failures[fk]; ok || len(pc.failures) < maxDistinct {
		pc.failures[fk] += n
	}
}

// Reports returns one report per policy domain and UTC day with
// sessions, sorted by day and domain.
func (a *Aggregator) Reports(r Reporter) []*Report {
	for k, w := range a.waiting {
		pl, ok := a.firstOf[k]
		if !ok {
			pl = PolicyLine{Domain: k.domain, Type: PolicyNotFound}
		}
		for sk, n := range w {
			a.count(k, pl, sk, n)
		}
	}
	clear(a.waiting)
	var keys []dayKey
	for k := range a.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].day != keys[j].day {
			return keys[i].day < keys[j].day
		}
		return keys[i].domain < keys[j].domain
	})
	var out []*Report
	for _, k := range keys {
		day, _ := time.Parse(time.DateOnly, k.day)
		rep := &Report{
			OrganizationName: r.OrgName,
			DateRange:        DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			ContactInfo:      r.Contact,
			ReportID:         k.day + "_" + k.domain + "@" + r.Domain,
			Sender:           r.Domain,
		}
		var ids []string
		for id := range a.counts[k] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			rep.Policies = append(rep.Policies, a.counts[k][id].agg(k.domain))
		}
		out = append(out, rep)
	}
	return out
}

func (pc *policyCount) agg(domain string) PolicyAgg {
	pa := PolicyAgg{
		Policy:  PolicyDesc{Type: pc.line.Type, String: pc.line.Strings, Domain: domain, MXHost: pc.line.MXHost},
		Summary: pc.summary,
	}
	for fk, n := range pc.failures {
		pa.FailureDetails = append(pa.FailureDetails, FailureDetail{
			ResultType: fk.result, ReceivingMXHostname: fk.mx, ReceivingIP: fk.ip,
			FailedSessionCount: n, FailureReasonCode: fk.reason,
		})
	}
	sort.Slice(pa.FailureDetails, func(i, j int) bool {
		x, y := pa.FailureDetails[i], pa.FailureDetails[j]
		if x.ResultType != y.ResultType {
			return x.ResultType < y.ResultType
		}
		if x.ReceivingMXHostname != y.ReceivingMXHostname {
			return x.ReceivingMXHostname < y.ReceivingMXHostname
		}
		return x.ReceivingIP+x.FailureReasonCode < y.ReceivingIP+y.FailureReasonCode
	})
	return pa
}
