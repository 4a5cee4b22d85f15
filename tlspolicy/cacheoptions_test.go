package tlspolicy

import (
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

func TestCacheOptionsFromConfig(t *testing.T) {
	tests := []struct {
		name, src string
		want      *DeciderOptions // the Decider's fields: maxTTL, minTTL, failTTL, staleTTL
		err       string          // "line:col: text"
	}{
		{name: "defaults", src: "",
			want: &DeciderOptions{CacheMaxTTL: time.Hour, CacheMinTTL: time.Second, FailureTTL: 5 * time.Second, StaleTTL: time.Hour}},
		{name: "set", src: "dane_cache_min_ttl = 2s\ndane_cache_failure_ttl = 1m\ndane_cache_stale_ttl = 3d\n",
			want: &DeciderOptions{CacheMaxTTL: time.Hour, CacheMinTTL: 2 * time.Second, FailureTTL: time.Minute, StaleTTL: 72 * time.Hour}},
		{name: "zero floor and no stale", src: "dane_cache_min_ttl = 0s\ndane_cache_stale_ttl = 0s\n",
			want: &DeciderOptions{CacheMaxTTL: time.Hour, FailureTTL: 5 * time.Second}},
		{name: "failure TTL too short", src: "dane_cache_failure_ttl = 500ms\n", err: "1:26: dane_cache_failure_ttl must be between 1s and 5m"},
		{name: "failure TTL too long", src: "dane_cache_failure_ttl = 6m\n", err: "1:26: dane_cache_failure_ttl must be between 1s and 5m"},
		{name: "floor above the ceiling", src: "dane_cache_max_ttl = 10s\n\ndane_cache_min_ttl = 20s\n",
			err: "3:22: dane_cache_min_ttl must be between 0s and 10s (and at most dane_cache_max_ttl), found 20s"},
		{name: "floor too long", src: "dane_cache_min_ttl = 2m\n", err: "1:22: dane_cache_min_ttl must be between 0s and 1m"},
		{name: "stale too long", src: "dane_cache_stale_ttl = 4d\n", err: "1:24: dane_cache_stale_ttl must be between 0s and 72h (RFC 8767 §5), found 4d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load("test.conf", []byte(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), "test.conf:"+tt.err) {
					t.Fatalf("error %v, want test.conf:%s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			env, err := NewEnv(cfg, testZone(), nil)
			if err != nil {
				t.Fatal(err)
			}
			dc, w := env.Decider, tt.want
			if dc.maxTTL != w.CacheMaxTTL || dc.minTTL != w.CacheMinTTL || dc.failTTL != w.FailureTTL || dc.staleTTL != w.StaleTTL {
				t.Errorf("max %s min %s failure %s stale %s, want %+v", dc.maxTTL, dc.minTTL, dc.failTTL, dc.staleTTL, w)
			}
		})
	}
}
