package metrics

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

const namespace = "sidecar"

// Label values outside a label's set.
const other = "other"

// Label value sets. Each counter is made for every combination in New.
var (
	verdicts     = []string{"accept", "quarantine", "deny", "defer", "discard", "drop", "aborted"}
	spfTokens    = []string{"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror", other}
	dkimTokens   = []string{"none", "pass", "fail", "neutral", "policy", "temperror", "permerror", other}
	dmarcTokens  = []string{"none", "pass", "fail", "temperror", "permerror", other}
	dispositions = []string{"none", "quarantine", "reject", other}
	arcTokens    = []string{"none", "pass", "fail", "temperror", other}
	dnsTypes     = []string{"A", "AAAA", "MX", "TXT", "TLSA", "PTR", "NS", "CNAME", "SOA", other}
	dnsRcodes    = []string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "timeout", "transport", "error"}
	protocols    = []string{"socketmap", "tcp_table", "line", other}
	policies     = []string{"dane-only", "dane", "encrypt", "may", "none", "sts", "temp", "error", other}
	reasons      = []string{"configuration", "dns_failure", "mx_insecure", "no_tlsa", "no_usable_tlsa", "tlsa", "bad_request", other}
)

// Buckets of the latency histograms, in seconds: a cached DNS answer or a
// stage without DNS takes microseconds, a DKIM key lookup milliseconds,
// a timeout seconds.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25}

// Metrics holds sidecar's collectors and their registry. Its observer
// methods are safe for concurrent use and never block.
type Metrics struct {
	reg *prometheus.Registry

	messages    map[string]*[5]prometheus.Counter // verdict -> by stage
	spf         counterSet
	dkim        counterSet
	dmarc       counterSet
	disposition counterSet
	arc         counterSet
	overrides   prometheus.Counter
	stages      [5]prometheus.Observer

	dnsQueries  map[string]map[string]prometheus.Counter // type -> rcode
	dnsLatency  map[string]prometheus.Observer           // type
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	lastDNSOK   atomic.Int64 // unix nanoseconds of the last answer from a server

	policy        *prometheus.CounterVec
	policyLatency prometheus.Observer
	policyCache   [tlspolicy.NumCacheEvents]prometheus.Counter

	reloads    *prometheus.CounterVec
	configInfo *prometheus.GaugeVec
	configTime prometheus.Gauge
	hashMu     sync.Mutex
	hash       string

	health health
}

// counterSet is one counter per value of a label.
type counterSet map[string]prometheus.Counter

func (s counterSet) inc(v string) {
	c, ok := s[v]
	if !ok {
		c = s[other]
	}
	c.Inc()
}

func newCounterSet(reg *prometheus.Registry, name, help, label string, values []string) counterSet {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{label})
	reg.MustRegister(vec)
	s := counterSet{}
	for _, v := range values {
		s[v] = vec.WithLabelValues(v)
	}
	return s
}

// New returns the collectors, registered with a registry of their own
// together with the Go runtime and process collectors and the build
// information.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	m := &Metrics{reg: reg}

	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "messages_total",
		Help: "Messages ended, by final verdict (accept, quarantine, deny, defer, discard, drop, aborted) and the stage that gave it."},
		[]string{"verdict", "stage"})
	reg.MustRegister(msgs)
	m.messages = map[string]*[5]prometheus.Counter{}
	for _, v := range verdicts {
		var byStage [5]prometheus.Counter
		for _, st := range acl.Stages() {
			byStage[st] = msgs.WithLabelValues(v, st.String())
		}
		m.messages[v] = &byStage
	}
	m.spf = newCounterSet(reg, "spf_results_total", "SPF results of MAIL FROM (HELO for the null sender) at the end of the message, by RFC 7208 result token.", "result", spfTokens)
	m.dkim = newCounterSet(reg, "dkim_signatures_total", "DKIM signatures verified, by RFC 8601 result token; an unsigned message counts once as none.", "result", dkimTokens)
	m.dmarc = newCounterSet(reg, "dmarc_results_total", "DMARC results, by result token.", "result", dmarcTokens)
	m.disposition = newCounterSet(reg, "dmarc_dispositions_total", "DMARC dispositions of failing messages: the policy to apply after t= and pct=.", "disposition", dispositions)
	m.arc = newCounterSet(reg, "arc_results_total", "ARC chain validation results, by state.", "state", arcTokens)
	m.overrides = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "arc_overrides_total",
		Help: "DMARC failures overridden because a trusted ARC sealer vouched for the message (RFC 8617 §7.2)."})
	reg.MustRegister(m.overrides)

	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "stage_duration_seconds",
		Help: "Time from a stage's packet to the reply: the stage's ACL run; for data, the end of the body and the authentication work included.", Buckets: latencyBuckets},
		[]string{"stage"})
	reg.MustRegister(stages)
	for _, st := range acl.Stages() {
		m.stages[st] = stages.WithLabelValues(st.String())
	}

	queries := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "dns_queries_total",
		Help: "Queries sent to DNS servers, by type and rcode (timeout, transport and error for queries that got no usable reply)."},
		[]string{"type", "rcode"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "dns_query_duration_seconds",
		Help: "Time of one exchange with a DNS server, by type.", Buckets: latencyBuckets}, []string{"type"})
	reg.MustRegister(queries, latency)
	m.dnsQueries = map[string]map[string]prometheus.Counter{}
	m.dnsLatency = map[string]prometheus.Observer{}
	for _, t := range dnsTypes {
		m.dnsQueries[t] = map[string]prometheus.Counter{}
		for _, rc := range dnsRcodes {
			m.dnsQueries[t][rc] = queries.WithLabelValues(t, rc)
		}
		m.dnsLatency[t] = latency.WithLabelValues(t)
	}
	m.cacheHits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "dns_cache_hits_total", Help: "DNS lookups answered from the cache."})
	m.cacheMisses = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "dns_cache_misses_total", Help: "DNS lookups not answered from the cache."})
	reg.MustRegister(m.cacheHits, m.cacheMisses)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "dns_last_answer_timestamp_seconds",
		Help: "When a DNS server last answered (Unix time); 0 before the first answer."}, func() float64 {
		return float64(m.lastDNSOK.Load()) / 1e9
	}))

	m.policy = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "policy_answers_total",
		Help: "TLS policy socket answers, by protocol, policy and reason class."}, []string{"protocol", "policy", "reason"})
	policyLatency := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "policy_duration_seconds",
		Help: "Time to decide a TLS policy request, cached answers included.", Buckets: latencyBuckets})
	m.policyLatency = policyLatency
	reg.MustRegister(m.policy, policyLatency)
	m.newPolicyCache(reg)

	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "config_reloads_total",
		Help: "Configuration reloads (SIGHUP), by result: ok or failed."}, []string{"result"})
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "config_info",
		Help: "1, labelled with the SHA-256 (first 16 hex digits) of the configuration in force."}, []string{"hash"})
	m.configTime = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_last_load_timestamp_seconds",
		Help: "When the configuration in force was loaded (Unix time)."})
	reg.MustRegister(m.reloads, m.configInfo, m.configTime)
	return m
}

// Registry returns the registry the collectors are registered with.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConfigLoaded records the configuration now in force: its text (for the
// hash label of sidecar_config_info) and, when reload, a successful
// reload.
func (m *Metrics) ConfigLoaded(src []byte, reload bool) {
	sum := sha256.Sum256(src)
	h := hex.EncodeToString(sum[:8])
	m.hashMu.Lock()
	if m.hash != "" && m.hash != h {
		m.configInfo.DeleteLabelValues(m.hash)
	}
	m.hash = h
	m.configInfo.WithLabelValues(h).Set(1)
	m.hashMu.Unlock()
	m.configTime.Set(float64(time.Now().UnixNano()) / 1e9)
	if reload {
		m.reloads.WithLabelValues("ok").Inc()
	}
}

// ReloadFailed records a reload that kept the running configuration.
func (m *Metrics) ReloadFailed() { m.reloads.WithLabelValues("failed").Inc() }

// WatchConnections makes sidecar_open_connections{listener} read open()
// at every scrape (milter.Server.Sessions, tlspolicy.Server.Active).
func (m *Metrics) WatchConnections(listener string, open func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "open_connections",
		Help: "Open connections, by listener: milter (one per SMTP session) or policy.", ConstLabels: prometheus.Labels{"listener": listener}},
		func() float64 { return float64(open()) }))
}

// WatchReports makes the report wing of kind ("failure": DMARC failure
// reports) visible: sidecar_report_spool_depth{kind} reads depth() and
// sidecar_reports_total{kind,result} reads counted(result) for each of
// results at every scrape. The results are a fixed set (bounded labels);
// counted must never decrease.
func (m *Metrics) WatchReports(kind string, results []string, depth func() int, counted func(result string) uint64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "report_spool_depth",
		Help: "Reports waiting in the spool to be sent, by kind.", ConstLabels: prometheus.Labels{"kind": kind}},
		func() float64 { return float64(depth()) }))
	for _, r := range results {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "reports_total",
			Help:        "Reports by kind and result: spooled, or dropped before the spool (rate_limited, spool_full, spool_error); then per destination sent, temporary (tried again), failed or expired.",
			ConstLabels: prometheus.Labels{"kind": kind, "result": r}},
			func() float64 { return float64(counted(r)) }))
	}
}

// newPolicyCache makes the decision cache's counters: every request by
// how the cache answered it, and the cache's background work.
func (m *Metrics) newPolicyCache(reg *prometheus.Registry) {
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "policy_cache_answers_total",
		Help: "TLS policy requests by how the decision cache answered: hit (a cached decision), stale (an expired dane-only or temp decision while it is refreshed), miss (decided from DNS for the request), wait (waited for a decision in flight)."},
		[]string{"result"})
	refreshes := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "policy_cache_refreshes_total",
		Help: "Decisions refreshed in the background, started by a request answered from the cache."})
	failures := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "policy_cache_failures_total",
		Help: "Failed decisions (temp): cached for dane_cache_failure_ttl, or retried after it behind a decision still in force."})
	reg.MustRegister(answers, refreshes, failures)
	for _, ev := range []tlspolicy.CacheEvent{tlspolicy.EventHit, tlspolicy.EventStale, tlspolicy.EventMiss, tlspolicy.EventWait} {
		m.policyCache[ev] = answers.WithLabelValues(ev.String())
	}
	m.policyCache[tlspolicy.EventRefresh] = refreshes
	m.policyCache[tlspolicy.EventFailure] = failures
}
