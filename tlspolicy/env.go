package tlspolicy

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/resolver"
)

// The options this package owns.
func init() {
	for _, d := range []config.OptionDef{
		{Name: "policy_allow", Kind: config.KindNetList, Default: "<; 127.0.0.0/8 ; ::1", Doc: "client addresses allowed to query the TLS policy socket (unix sockets are always allowed)"},
		{Name: "policy_max_connections", Kind: config.KindInt, Default: "512", Min: 1, Max: 1_000_000, Doc: "open TLS policy connections at most; at the cap the connection idle longest is closed to make room, and further clients wait in the listen queue while all are busy"},
		{Name: "policy_max_connections_per_client", Kind: config.KindInt, Default: "0", Min: 0, Max: 1_000_000, Doc: "open TLS policy connections from one TCP client address at most; further ones are closed at once; 0 means policy_max_connections"},
		{Name: "policy_idle_timeout", Kind: config.KindDuration, Default: "1m", Doc: "how long an idle policy connection is kept open (Postfix closes its own after ipc_idle, 5s); at policy_max_connections the connection idle longest is closed to make room"},
		{Name: "policy_request_timeout", Kind: config.KindDuration, Default: "10s", Doc: "time to receive a whole request once it started, and to send the reply"},
		{Name: "dane_domains", Kind: config.KindDomainList, Default: "*", Doc: "next-hop domains for which DANE is tried (RFC 7672)"},
		{Name: "dane_require_domains", Kind: config.KindDomainList, Doc: "next-hop domains for which DANE is required: without it the MTA defers"},
		{Name: "dane_disable_domains", Kind: config.KindDomainList, Doc: "next-hop domains for which DANE is never used (answer: may)"},
		{Name: "hosts_try_dane", Kind: config.KindHostList, Doc: "MX hosts (names or addresses) for which DANE is tried, as in Exim"},
		{Name: "hosts_require_dane", Kind: config.KindHostList, Doc: "MX hosts (names or addresses) for which DANE is required, as in Exim"},
		{Name: "hosts_require_ocsp", Kind: config.KindHostList, Doc: "hosts that must staple a valid OCSP response"},
		{Name: "hosts_request_ocsp", Kind: config.KindHostList, Default: "*", Doc: "hosts asked for OCSP stapling; while \"*\", hosts using DANE are asked only when they have only DANE-TA records"},
		{Name: "dane_pkix_as_dane", Kind: config.KindBool, Default: "false", Doc: "use TLSA usages 0 and 1 as 2 and 3 (a digest with usage 0 stays unusable)"},
		{Name: "dane_lookup_timeout", Kind: config.KindDuration, Default: "10s", Doc: "time for all the DNS lookups of one decision; past it the answer is a temporary failure"},
	} {
		config.RegisterOption(d)
	}
	// The rules are compiled when the configuration is loaded, so that
	// check-config reports their mistakes.
	config.RegisterCompiler(config.Compiler{Name: compilerName, Compile: func(cfg *config.Config) (any, error) {
		r, err := RulesFromConfig(cfg)
		if err != nil {
			return nil, err
		}
		return r, nil
	}})
}

const compilerName = "tlspolicy"

// Env is what the policy server needs from one loaded configuration. The
// daemon builds a new one on start and on reload.
type Env struct {
	Decider  *Decider
	Logger   *slog.Logger
	Allow    []netip.Prefix // client addresses allowed; nil allows none but unix sockets
	MaxConns int
	// MaxConnsPerClient caps the connections of one TCP client address;
	// 0 means MaxConns.
	MaxConnsPerClient int
	IdleTimeout       time.Duration
	RequestTimeout    time.Duration
	// Observer, when set, hears of every decision the server answers
	// with (the daemon's metrics).
	Observer Observer
	// STSCache holds the MTA-STS policies (nil: mta_sts is off); Run
	// refreshes them.
	STSCache *mtasts.Cache
}

// STSRefreshInterval is how often Run looks for cached MTA-STS policies
// due for a refresh (half their max_age passed, at most a day).
const STSRefreshInterval = time.Minute

// Run refreshes the cached MTA-STS policies in the background until ctx
// ends (the daemon cancels it on reload and shutdown): once at once, for
// the policies of the cache file, then every STSRefreshInterval. A failed
// refresh keeps the cached policy (RFC 8461 §5.1) and is logged. Without
// MTA-STS it returns at once.
func (e *Env) Run(ctx context.Context) {
	if e.STSCache == nil {
		return
	}
	e.STSCache.Run(ctx, STSRefreshInterval, func(err error) {
		e.Logger.Warn("MTA-STS policy refresh failed; the cached policy stays in force", "error", err.Error())
	})
}

// Observer hears of the policy server's answers. Its method runs on the
// request path: it must return quickly and never block.
type Observer interface {
	// PolicyAnswered: a request of proto ("socketmap", "tcp_table",
	// "line") was decided from the cache or the DNS, or failed (err: a
	// malformed next hop), after took.
	PolicyAnswered(proto string, d *Decision, err error, took time.Duration)
	// PolicyCache: the decision cache answered a request (EventHit,
	// EventStale, EventMiss, EventWait: one per request with a valid next
	// hop) or worked in the background (EventRefresh, EventFailure).
	PolicyCache(ev CacheEvent)
}

// SetObserver makes the server and the Decider report to o. Call it
// before the Env serves requests.
func (e *Env) SetObserver(o Observer) {
	e.Observer = o
	e.Decider.obs = o
}

// Defaults of the server limits.
const (
	DefaultMaxConns       = 512
	DefaultIdleTimeout    = time.Minute
	DefaultRequestTimeout = 10 * time.Second
)

// DefaultAllow is the default policy_allow: loopback only.
var DefaultAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// NewEnv compiles the policy options of cfg and makes a Decider that asks q.
func NewEnv(cfg *config.Config, q resolver.Querier, logger *slog.Logger) (*Env, error) {
	rules, ok := compiledRules(cfg)
	if !ok {
		var err error
		if rules, err = RulesFromConfig(cfg); err != nil {
			return nil, err
		}
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	stsRules, ok := compiledSTSRules(cfg)
	if !ok {
		var err error
		if stsRules, err = STSRulesFromConfig(cfg); err != nil {
			return nil, err
		}
	}
	sts, err := NewSTS(stsRules, q)
	if err != nil {
		logger.Warn("mta_sts_cache_file: " + err.Error())
	}
	var stsCache *mtasts.Cache
	if sts != nil {
		stsCache = sts.Cache
	}
	co, ok := compiledCacheOptions(cfg)
	if !ok {
		var err error
		if co, err = CacheOptionsFromConfig(cfg); err != nil {
			return nil, err
		}
	}
	return &Env{
		Decider: NewDecider(q, DeciderOptions{
			Rules:         rules,
			CacheSize:     co.Size,
			CacheMaxTTL:   co.MaxTTL,
			CacheMinTTL:   co.MinTTL,
			FailureTTL:    co.FailTTL,
			StaleTTL:      co.Stale,
			LookupTimeout: cfg.Duration("dane_lookup_timeout"),
			STS:           sts,
		}),
		Logger:            logger,
		Allow:             cfg.Get("policy_allow").Nets,
		MaxConns:          int(cfg.Int("policy_max_connections")),
		MaxConnsPerClient: int(cfg.Int("policy_max_connections_per_client")),
		IdleTimeout:       cfg.Duration("policy_idle_timeout"),
		RequestTimeout:    cfg.Duration("policy_request_timeout"),
		STSCache:          stsCache,
	}, nil
}

// compiledSTSRules returns the MTA-STS rules compiled when cfg was loaded.
func compiledSTSRules(cfg *config.Config) (*STSRules, bool) {
	return compiled[*STSRules](cfg, stsCompilerName)
}

// compiledRules returns the rules compiled when cfg was loaded.
func compiledRules(cfg *config.Config) (*Rules, bool) { return compiled[*Rules](cfg, compilerName) }

// compiled returns what the compiler name made when cfg was loaded.
func compiled[T any](cfg *config.Config, name string) (T, bool) {
	v, _ := cfg.Compiled(name)
	r, ok := v.(T)
	return r, ok
}

// RulesFromConfig compiles the per-destination DANE and OCSP options. The
// error is a config.ErrorList: every faulty option, at its position.
func RulesFromConfig(cfg *config.Config) (*Rules, error) {
	r := &Rules{PKIXAsDANE: cfg.Bool("dane_pkix_as_dane")}
	var errs config.ErrorList
	for _, o := range []struct {
		name string
		host bool
		dst  **List
	}{
		{"dane_domains", false, &r.DANEDomains},
		{"dane_require_domains", false, &r.RequireDomains},
		{"dane_disable_domains", false, &r.DisableDomains},
		{"hosts_try_dane", true, &r.TryHosts},
		{"hosts_require_dane", true, &r.RequireHosts},
		{"hosts_require_ocsp", true, &r.RequireOCSP},
		{"hosts_request_ocsp", true, &r.RequestOCSP},
	} {
		s := cfg.Get(o.name)
		v := s.Value
		if s.Str != v.Text { // a quoted value
			v = config.NewValue(s.Str, v.Pos)
		}
		l, err := CompileList(cfg, v, o.host)
		if err != nil {
			for _, e := range config.AsList(err) {
				e.Msg = o.name + ": " + e.Msg
				errs = append(errs, e)
			}
			continue
		}
		*o.dst = l
	}
	if len(errs) > 0 {
		return nil, errs
	}
	r.RequestOCSPDefault = r.RequestOCSP.String() == "*"
	warnOCSP(cfg, r)
	return r, nil
}

// TestEnv returns an Env for tests and tools: the default rules unless
// rules is not nil, a discarding logger, loopback clients allowed.
func TestEnv(q resolver.Querier, rules *Rules) *Env {
	return &Env{
		Decider:        NewDecider(q, DeciderOptions{Rules: rules}),
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Allow:          DefaultAllow,
		MaxConns:       DefaultMaxConns,
		IdleTimeout:    DefaultIdleTimeout,
		RequestTimeout: DefaultRequestTimeout,
	}
}
