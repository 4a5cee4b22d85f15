package tlspolicy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

func TestNewEnvFromConfig(t *testing.T) {
	src := `
domainlist strict = dane.example.com : *.strict.example
hostlist legacy = 192.0.2.0/24
dane_require_domains = +strict
dane_disable_domains = unusable.example.com
hosts_require_ocsp = mx2.example.com
dane_pkix_as_dane = true
dane_cache_max_ttl = 5m
policy_allow = <; 127.0.0.1 ; 192.0.2.0/24
policy_max_connections = 7
policy_idle_timeout = 1m
`
	cfg, err := config.Load("test.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewEnv(cfg, testZone(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if env.MaxConns != 7 || env.IdleTimeout != time.Minute || env.RequestTimeout != 10*time.Second || len(env.Allow) != 2 {
		t.Errorf("limits: %+v", env)
	}
	r := env.Decider.Rules()
	if !r.PKIXAsDANE || !r.RequestOCSPDefault || env.Decider.maxTTL != 5*time.Minute {
		t.Errorf("rules: %+v", r)
	}
	tests := []struct {
		nexthop string
		level   Level
		ocsp    OCSP
	}{
		{"dane.example.com", LevelDANEOnly, OCSPNone},
		{"mx.strict.example", LevelNone, OCSPRequest}, // NXDOMAIN is an answer: the MTA bounces
		{"unusable.example.com", LevelMay, OCSPRequest},
		{"[mx2.example.com]", LevelDANEOnly, OCSPRequire},
		{"pkixta.example.com", LevelEncrypt, OCSPRequest},
	}
	for _, tt := range tests {
		d, err := env.Decider.Decide(context.Background(), tt.nexthop)
		if err != nil || d.Level != tt.level || d.OCSP != tt.ocsp {
			t.Errorf("%s: %s/%s, want %s/%s (%v)\n%s", tt.nexthop, d.Level, d.OCSP, tt.level, tt.ocsp, err, d.Explain())
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg, err := config.Load("empty.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewEnv(cfg, testZone(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if env.MaxConns != DefaultMaxConns || env.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("defaults: %+v", env)
	}
	want := DefaultAllow
	if len(env.Allow) != len(want) || env.Allow[0] != want[0] || env.Allow[1] != want[1] {
		t.Errorf("policy_allow default %v, want loopback", env.Allow)
	}
	if !allowed(tcpAddr("127.0.0.1"), env.Allow) || allowed(tcpAddr("192.0.2.1"), env.Allow) || !allowed(tcpAddr("::1"), env.Allow) {
		t.Error("default policy_allow is not loopback only")
	}
}

func TestListErrors(t *testing.T) {
	for _, src := range []string{
		"dane_domains = +nosuch",
		"hosts_try_dane = ^(",
		"dane_domains = exa mple.com",
		"domainlist a = +a\ndane_domains = +a",
	} {
		cfg, err := config.Load("bad.conf", []byte(src))
		if err != nil {
			continue // the config package refused it already
		}
		if _, err := NewEnv(cfg, testZone(), nil); err == nil {
			t.Errorf("%q: no error", src)
		} else if !strings.Contains(err.Error(), "bad.conf") && !strings.Contains(err.Error(), "dane") {
			t.Errorf("%q: error %q has no position", src, err)
		}
	}
}

func TestListMatch(t *testing.T) {
	l := MustList("!mx.bad.example : *.example : 192.0.2.0/24 : ^mx[0-9]+\\.test$", true)
	for _, tt := range []struct {
		name string
		addr string
		want bool
	}{
		{"mx.bad.example", "", false},
		{"mx.good.example", "", true},
		{"other.org", "192.0.2.9", true},
		{"mx12.test", "", true},
		{"mx.test", "", false},
		{"other.org", "2001:db8::1", false},
	} {
		var addrs []netip.Addr
		if tt.addr != "" {
			addrs = []netip.Addr{netip.MustParseAddr(tt.addr)}
		}
		if got := l.Match(tt.name, addrs); got != tt.want {
			t.Errorf("Match(%s, %s) = %v", tt.name, tt.addr, got)
		}
	}
	if !MustList("a.example : !*", false).Match("a.example", nil) || MustList("!a.example", false).Match("a.example", nil) || !MustList("!a.example", false).Match("b.example", nil) {
		t.Error("negation semantics")
	}
}

func tcpAddr(ip string) *net.TCPAddr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
