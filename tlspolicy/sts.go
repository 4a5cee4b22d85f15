package tlspolicy

import (
	"context"
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/resolver"
)

// The MTA-STS options (RFC 8461).
func init() {
	for _, d := range []config.OptionDef{
		{Name: "mta_sts", Kind: config.KindBool, Default: "no", Doc: "apply MTA-STS policies (RFC 8461) to next-hop domains without usable DANE"},
		{Name: "mta_sts_domains", Kind: config.KindDomainList, Default: "*", Doc: "next-hop domains whose MTA-STS policy is looked up (with mta_sts = yes)"},
		{Name: "mta_sts_disable_domains", Kind: config.KindDomainList, Doc: "next-hop domains whose MTA-STS policy is never looked up"},
		{Name: "mta_sts_ca_file", Kind: config.KindPath, Doc: "PEM file of the CAs that policy servers' certificates must chain to; empty: the system's roots (set it only for private test beds)"},
		{Name: "mta_sts_cache_file", Kind: config.KindPath, Doc: "file keeping the MTA-STS policies across restarts; empty: kept in memory only"},
		{Name: "mta_sts_fetch_timeout", Kind: config.KindDuration, Default: "5s", Doc: "time for one policy fetch over HTTPS (connection, TLS, request, body)"},
	} {
		config.RegisterOption(d)
	}
	config.RegisterCompiler(config.Compiler{Name: stsCompilerName, Compile: func(cfg *config.Config) (any, error) {
		return STSRulesFromConfig(cfg)
	}})
}

const stsCompilerName = "tlspolicy-mtasts"

// STSRules are the compiled MTA-STS options.
type STSRules struct {
	Enabled   bool
	Domains   *List          // mta_sts_domains
	Disable   *List          // mta_sts_disable_domains
	Options   mtasts.Options // Options.HTTP nil: a client from Roots and FetchTimeout
	CacheFile string
	// Roots are those of mta_sts_ca_file (nil: the system's).
	Roots        *x509.CertPool
	FetchTimeout time.Duration
}

// STSRulesFromConfig compiles the MTA-STS options: the domain lists, and
// the CA file, read at load time so that check-config reports it.
func STSRulesFromConfig(cfg *config.Config) (*STSRules, error) {
	r := &STSRules{Enabled: cfg.Bool("mta_sts"), CacheFile: cfg.String("mta_sts_cache_file")}
	var errs config.ErrorList
	errAt := func(name string, err error) {
		for _, e := range config.AsList(err) {
			e.Msg = name + ": " + e.Msg
			errs = append(errs, e)
		}
	}
	for _, o := range []struct {
		name string
		dst  **List
	}{{"mta_sts_domains", &r.Domains}, {"mta_sts_disable_domains", &r.Disable}} {
		s := cfg.Get(o.name)
		v := s.Value
		if s.Str != v.Text {
			v = config.NewValue(s.Str, v.Pos)
		}
		l, err := CompileList(cfg, v, false)
		if err != nil {
			errAt(o.name, err)
			continue
		}
		*o.dst = l
	}
	roots, err := mtasts.LoadRoots(cfg.String("mta_sts_ca_file"))
	if err != nil {
		pos := cfg.Get("mta_sts_ca_file").Value.Pos
		e := &config.Error{Pos: pos, Msg: "mta_sts_ca_file: " + err.Error()}
		if cfg.Reporter != nil {
			e.Source = cfg.Reporter.Source(pos.File, pos.Line)
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	r.Roots, r.FetchTimeout = roots, cfg.Duration("mta_sts_fetch_timeout")
	r.Options = mtasts.Options{File: r.CacheFile}
	return r, nil
}

// STSLookup finds a domain's MTA-STS policy: *mtasts.Cache.
type STSLookup interface {
	Lookup(ctx context.Context, domain string) (mtasts.Result, error)
}

// STS is the MTA-STS side of a Decider.
type STS struct {
	Lookup  STSLookup
	Domains *List // nil: every domain
	Disable *List
	// Cache is Lookup when it is an *mtasts.Cache (NewSTS), for the
	// background refresh; nil otherwise.
	Cache *mtasts.Cache
}

// NewSTS makes the MTA-STS side from compiled rules, asking q for the TXT
// records and, unless r.Options.HTTP is set, for the addresses of the
// policy hosts: the system's resolver is never asked. It returns nil when
// mta_sts is off. The error is about the cache file; the STS side works
// all the same (starting empty).
func NewSTS(r *STSRules, q resolver.Querier) (*STS, error) {
	if r == nil || !r.Enabled {
		return nil, nil
	}
	opts := r.Options
	opts.DNS = q
	if opts.HTTP == nil {
		opts.HTTP = mtasts.NewResolvingHTTPClient(r.Roots, r.FetchTimeout, q)
	}
	c, err := mtasts.New(opts)
	return &STS{Lookup: c, Domains: r.Domains, Disable: r.Disable, Cache: c}, err
}

// STSDecision is the MTA-STS side of a Decision.
type STSDecision struct {
	Policy  *mtasts.Policy // nil: no policy
	ID      string
	Source  mtasts.Source
	Expires time.Time
	Reason  string
	Err     error // a temporary failure
	// FetchErr is a permanent failure to fetch an announced policy
	// (mtasts.Result.FetchErr), for TLS reports.
	FetchErr error
}

// Mode is the policy's mode, "" without a policy.
func (s *STSDecision) Mode() mtasts.Mode {
	if s == nil || s.Policy == nil {
		return ""
	}
	return s.Policy.Mode
}

// applySTS looks up the MTA-STS policy of a next-hop domain for which
// DANE gave nothing (RFC 8461 §2: DANE wins): an enforce policy makes the
// level secure; testing and none leave it, the policy being kept in the
// decision (for TLS reports); a temporary failure defers.
func (e *engine) applySTS(ctx context.Context, tt *ttlTracker, d *Decision) {
	s, h := e.sts, d.NextHop
	switch {
	case s == nil || h.NoMX || h.IP.IsValid():
		return
	case d.Level != LevelNone && d.Level != LevelMay:
		return // DANE decided, or its lookups failed
	case d.MXLookup && len(d.Hosts) == 0:
		return // NXDOMAIN or null MX: no mail goes there
	case s.Disable.Match(h.Name, nil) || s.Domains != nil && !s.Domains.Match(h.Name, nil):
		return
	}
	r, err := s.Lookup.Lookup(ctx, h.Name)
	sd := &STSDecision{Policy: r.Policy, ID: r.ID, Source: r.Source, Expires: r.Expires, Reason: r.Reason, FetchErr: r.FetchErr}
	d.STS = sd
	if err != nil {
		sd.Err, sd.Reason = err, err.Error()
		d.Level, d.Err = LevelTemp, err
		d.Reason = "MTA-STS policy lookup failed: " + sd.Reason + "; deferring, never downgrading"
		return
	}
	if r.TTL > 0 {
		tt.add(r.TTL)
	}
	if r.Policy != nil {
		if left := r.Expires.Sub(time.Now()); left > 0 {
			tt.add(left)
		}
	}
	if d.TTL = tt.get(); d.TTL == 0 && r.Policy == nil {
		d.TTL = time.Minute // nothing known about the TXT record's lifetime
	}
	switch sd.Mode() {
	case mtasts.ModeEnforce:
		d.Level = LevelSecure
		d.Reason = fmt.Sprintf("MTA-STS policy %s in enforce mode (%s): TLS with a PKIX-valid certificate for an MX host matching %s",
			r.ID, r.Source, strings.Join(patterns(r.Policy), ", "))
	case mtasts.ModeTesting:
		d.Reason += fmt.Sprintf("; MTA-STS policy %s in testing mode: nothing enforced, failures only reported", r.ID)
	case mtasts.ModeNone:
		d.Reason += fmt.Sprintf("; MTA-STS policy %s in mode none", r.ID)
	default:
		d.Reason += "; no MTA-STS policy (" + r.Reason + ")"
	}
}

func patterns(p *mtasts.Policy) []string {
	out := make([]string, len(p.MX))
	for i, m := range p.MX {
		out[i] = m.String()
	}
	return out
}

// PostfixMatch is the match= attribute of Postfix's secure level for the
// policy's mx patterns: "*.example.net" becomes ".example.net". Postfix
// lets ".example.net" match deeper names too (a.b.example.net), which
// RFC 8461 §4.1 does not: the certificate must still be valid for the
// name, and that is the closest Postfix can express.
func (s *STSDecision) PostfixMatch() string {
	var b strings.Builder
	for i, m := range s.Policy.MX {
		if i > 0 {
			b.WriteByte(':')
		}
		if m.Wildcard() {
			b.WriteString(string(m)[1:])
		} else {
			b.WriteString(string(m))
		}
	}
	return b.String()
}

// Postfix is the value of the decision in Postfix's smtp_tls_policy_maps
// (and Sendmail's socket map): the level, with its attributes for secure.
func (d *Decision) Postfix() string {
	if d.Level == LevelSecure && d.STS != nil && d.STS.Policy != nil {
		return "secure match=" + d.STS.PostfixMatch() + " servername=hostname"
	}
	return d.Level.String()
}

// EximSTS is the answer of the line protocol's "sts NEXTHOP": "enforce",
// "testing" or "none", and for enforce the mx patterns as an Exim host
// list; "defer" on a temporary failure.
func (d *Decision) EximSTS() string {
	switch {
	case d.Level == LevelTemp:
		return "defer " + oneLine(d.Reason)
	case d.STS == nil || d.STS.Policy == nil:
		return "none " + oneLine(d.Reason)
	case d.Level == LevelSecure:
		return "enforce " + strings.Join(patterns(d.STS.Policy), ":")
	}
	return string(d.STS.Policy.Mode) + " " + oneLine(d.Reason)
}

// EximIgnoreHosts is the answer of the line protocol's "stsignore
// NEXTHOP": for an enforce policy, "enforce" and an Exim host list for a
// dnslookup router's ignore_target_hosts that leaves only the MX hosts
// matching one of the policy's mx patterns. Each pattern becomes a
// negated regular expression on the host name, anchored at both ends, a
// wildcard standing for exactly one label (RFC 8461 §4.1), which Exim's
// own "*.example.net" items would not; "*" at the end ignores the rest.
// Other decisions answer as EximSTS does.
func (d *Decision) EximIgnoreHosts() string {
	if d.Level != LevelSecure || d.STS == nil || d.STS.Policy == nil {
		return d.EximSTS()
	}
	var b strings.Builder
	b.WriteString("enforce <;")
	for _, m := range d.STS.Policy.MX {
		b.WriteString("!^")
		if m.Wildcard() {
			b.WriteString(`[^.]+` + regexp.QuoteMeta(string(m)[1:]))
		} else {
			b.WriteString(regexp.QuoteMeta(string(m)))
		}
		b.WriteString("$;")
	}
	b.WriteString("*")
	return b.String()
}

// explainSTS writes the MTA-STS lines of Explain: the policy, and which
// MX hosts its patterns allow.
func (d *Decision) explainSTS(b *strings.Builder, s *STSDecision) {
	switch {
	case s.Err != nil:
		fmt.Fprintf(b, "MTA-STS:   lookup failed: %s\n", s.Reason)
		return
	case s.Policy == nil:
		fmt.Fprintf(b, "MTA-STS:   no policy: %s\n", s.Reason)
		return
	}
	fmt.Fprintf(b, "MTA-STS:   policy %s, mode %s, max_age %d, %s until %s\n", s.ID, s.Policy.Mode,
		int64(s.Policy.MaxAge/time.Second), s.Source, s.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(b, "           mx: %s\n", strings.Join(patterns(s.Policy), " "))
	for _, h := range d.Hosts {
		if p, ok := s.Policy.MatchMX(h.Name); ok {
			fmt.Fprintf(b, "           %s matches %s\n", h.Name, p)
		} else {
			fmt.Fprintf(b, "           %s matches no mx pattern: not used under enforce\n", h.Name)
		}
	}
}
