package tlspolicy

import (
	"strconv"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

// The decision cache's options.
func init() {
	for _, d := range []config.OptionDef{
		{Name: "dane_cache_size", Kind: config.KindInt, Default: "10000", Min: 0, Max: 10_000_000, Doc: "next-hop decisions cached; 0 disables the cache"},
		{Name: "dane_cache_max_ttl", Kind: config.KindDuration, Default: "1h", Doc: "longest time a decision is cached, whatever the DNS TTLs"},
		{Name: "dane_cache_min_ttl", Kind: config.KindDuration, Default: "1s", Doc: "shortest time a decision is cached, whatever the DNS TTLs (answers with TTL 0 included); a TLSA record that appears is picked up at most this long after the DNS stopped denying it; 0s to 1m"},
		{Name: "dane_cache_failure_ttl", Kind: config.KindDuration, Default: "5s", Doc: "how long a failed decision (SERVFAIL, bogus, timeout: the answer defers) is cached, so that a failing next hop costs one resolution per interval (RFC 9520); 1s to 5m"},
		{Name: "dane_cache_stale_ttl", Kind: config.KindDuration, Default: "1h", Doc: "how long after its expiry a dane-only or deferring decision still answers while its refresh runs or keeps failing (RFC 8767); other decisions are never served stale; 0s (never) to 3d"},
	} {
		config.RegisterOption(d)
	}
	config.RegisterCompiler(config.Compiler{Name: cacheCompilerName, Compile: func(cfg *config.Config) (any, error) {
		return CacheOptionsFromConfig(cfg)
	}})
}

const cacheCompilerName = "tlspolicy-cache"

// Bounds of the cache options.
const (
	MaxCacheMinTTL = time.Minute
	MinFailureTTL  = time.Second     // RFC 9520 §3.2: failures cached at least 1 second
	MaxFailureTTL  = 5 * time.Minute // RFC 2308 §7.1, §7.2: at most 5 minutes
	MaxStaleTTL    = 72 * time.Hour  // RFC 8767 §5: a maximum stale timer of 1 to 3 days
)

// CacheOptions are the compiled cache options, as DeciderOptions take
// them (negative: off).
type CacheOptions struct {
	Size                           int
	MaxTTL, MinTTL, FailTTL, Stale time.Duration
}

// CacheOptionsFromConfig reads the cache options and checks their bounds;
// the error is a config.ErrorList, each error at its option's value.
func CacheOptionsFromConfig(cfg *config.Config) (*CacheOptions, error) {
	o := &CacheOptions{
		Size:    int(cfg.Int("dane_cache_size")),
		MaxTTL:  cfg.Duration("dane_cache_max_ttl"),
		MinTTL:  cfg.Duration("dane_cache_min_ttl"),
		FailTTL: cfg.Duration("dane_cache_failure_ttl"),
		Stale:   cfg.Duration("dane_cache_stale_ttl"),
	}
	var errs config.ErrorList
	check := func(name string, v, lo, hi time.Duration, why string) {
		if v < lo || v > hi {
			errs = append(errs, cfg.ErrorAt(cfg.Get(name).Value.Pos, "%s must be between %s and %s%s, found %s",
				name, shortDuration(lo), shortDuration(hi), why, cfg.Get(name).Value.Text))
		}
	}
	maxTTL := o.MaxTTL
	if maxTTL <= 0 {
		maxTTL = DefaultCacheMaxTTL
	}
	check("dane_cache_min_ttl", o.MinTTL, 0, min(MaxCacheMinTTL, maxTTL), " (and at most dane_cache_max_ttl)")
	check("dane_cache_failure_ttl", o.FailTTL, MinFailureTTL, MaxFailureTTL, " (RFC 9520 §3.2, RFC 2308 §7)")
	check("dane_cache_stale_ttl", o.Stale, 0, MaxStaleTTL, " (RFC 8767 §5)")
	if len(errs) > 0 {
		return nil, errs
	}
	if o.Size == 0 {
		o.Size = -1
	}
	for _, v := range []*time.Duration{&o.MinTTL, &o.Stale} {
		if *v == 0 {
			*v = -1 // off, not the default
		}
	}
	return o, nil
}

// compiledCacheOptions returns the cache options compiled when cfg was
// loaded.
func compiledCacheOptions(cfg *config.Config) (*CacheOptions, bool) {
	return compiled[*CacheOptions](cfg, cacheCompilerName)
}

// shortDuration writes d as the configuration does: 5m, 72h, 1s.
func shortDuration(d time.Duration) string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d != 0 && d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.name
		}
	}
	if d == 0 {
		return "0s"
	}
	return d.String()
}
