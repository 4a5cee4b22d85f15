package metrics

import (
	"errors"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/stage"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

var (
	_ stage.Observer     = (*Metrics)(nil)
	_ resolver.Observer  = (*Metrics)(nil)
	_ tlspolicy.Observer = (*Metrics)(nil)
)

// StageDone records the latency of a stage (stage.Observer).
func (m *Metrics) StageDone(st acl.Stage, took time.Duration) {
	if int(st) < len(m.stages) {
		m.stages[st].Observe(took.Seconds())
	}
}

// MessageEnded counts a message by its final verdict and stage, and its
// authentication results as the transaction line shows them
// (stage.Observer).
func (m *Metrics) MessageEnded(t *acl.Txn, e acl.Ending) {
	if byStage, ok := m.messages[verdict(e)]; ok && int(e.Stage) < len(byStage) {
		byStage[e.Stage].Inc()
	}
	r := t.Results
	if r == nil {
		return
	}
	if ev := r.SPF; ev != nil {
		m.spf.inc(string(ev.Outcome.Result))
	}
	if r.DKIM.Examined {
		if len(r.DKIM.Results) == 0 {
			m.dkim.inc("none")
		}
		for _, sig := range r.DKIM.Results {
			m.dkim.inc(string(sig.Status))
		}
	}
	if d := r.DMARC; d != nil && d.Outcome.Result != "" {
		m.dmarc.inc(string(d.Outcome.Result))
		if d.Outcome.Result == "fail" {
			m.disposition.inc(string(d.Outcome.Disposition))
		}
		if d.Override != nil {
			m.overrides.Inc()
		}
	}
	if c := r.ARC.Chain; c != nil {
		m.arc.inc(c.StateWord())
	}
}

// verdict is the verdict label of an ending, as the transaction line
// names it.
func verdict(e acl.Ending) string {
	switch {
	case e.Quarantined:
		return "quarantine"
	case e.Aborted && e.Verb == acl.Accept:
		return "aborted"
	}
	return string(e.Verb)
}

// Lookup counts a lookup as a cache hit or miss (resolver.Observer).
func (m *Metrics) Lookup(_ resolver.Type, cached bool) {
	if cached {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// Exchange counts one exchange with a DNS server by type and rcode and
// records its latency; a reply (NOERROR, NXDOMAIN) makes DNS reachable
// for /readyz (resolver.Observer).
func (m *Metrics) Exchange(t resolver.Type, rcode resolver.Rcode, err error, took time.Duration) {
	typ := t.String()
	byRcode, ok := m.dnsQueries[typ]
	if !ok {
		typ = other
		byRcode = m.dnsQueries[other]
	}
	rc := rcodeLabel(rcode, err)
	if err == nil {
		m.lastDNSOK.Store(time.Now().UnixNano())
	}
	byRcode[rc].Inc()
	m.dnsLatency[typ].Observe(took.Seconds())
}

func rcodeLabel(rcode resolver.Rcode, err error) string {
	switch {
	case err == nil && rcode == resolver.RcodeSuccess:
		return "NOERROR"
	case err == nil && rcode == resolver.RcodeNXDomain:
		return "NXDOMAIN"
	case errors.Is(err, resolver.ErrServFail):
		return "SERVFAIL"
	case errors.Is(err, resolver.ErrRefused):
		return "REFUSED"
	case errors.Is(err, resolver.ErrTimeout):
		return "timeout"
	case errors.Is(err, resolver.ErrTransport):
		return "transport"
	}
	return "error"
}

// PolicyAnswered counts a policy answer by protocol, policy and reason
// class (tlspolicy.Observer).
func (m *Metrics) PolicyAnswered(proto string, d *tlspolicy.Decision, err error, took time.Duration) {
	m.policyLatency.Observe(took.Seconds())
	policy, reason := "error", "bad_request"
	if err == nil && d != nil {
		policy, reason = string(d.Level), reasonClass(d)
	}
	m.policy.WithLabelValues(bounded(proto, protocols), bounded(policy, policies), reason).Inc()
}

// PolicyCache counts what the decision cache did (tlspolicy.Observer).
func (m *Metrics) PolicyCache(ev tlspolicy.CacheEvent) {
	if int(ev) < len(m.policyCache) {
		m.policyCache[ev].Inc()
	}
}

// reasonClass sorts a decision's reason into a few classes.
func reasonClass(d *tlspolicy.Decision) string {
	switch {
	case d.Level == tlspolicy.LevelTemp:
		return "dns_failure"
	case d.Mode == tlspolicy.ModeDisabled || d.Mode == tlspolicy.ModeOff || d.Level == tlspolicy.LevelMay:
		return "configuration"
	case d.Level == tlspolicy.LevelEncrypt:
		return "no_usable_tlsa"
	case d.Level == tlspolicy.LevelDANE || d.Level == tlspolicy.LevelDANEOnly:
		return "tlsa"
	case d.MXLookup && !d.MXSecure:
		return "mx_insecure"
	}
	return "no_tlsa"
}

func bounded(v string, set []string) string {
	for _, s := range set {
		if s == v {
			return v
		}
	}
	return other
}
