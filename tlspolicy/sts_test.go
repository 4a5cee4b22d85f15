package tlspolicy

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/resolver"
)

// fakeSTS answers MTA-STS lookups from a map of policy texts ("" for no
// policy, "temp" for a temporary failure) and counts them.
type fakeSTS struct {
	policies map[string]string
	n        atomic.Int64
}

func (f *fakeSTS) Lookup(ctx context.Context, domain string) (mtasts.Result, error) {
	f.n.Add(1)
	text, ok := f.policies[domain]
	switch {
	case !ok || text == "":
		return mtasts.Result{Domain: domain, Source: mtasts.SourceNone, Reason: "no MTA-STS TXT record", TTL: time.Minute}, nil
	case text == "temp":
		return mtasts.Result{Domain: domain}, &resolver.QueryError{Name: "_mta-sts." + domain, Type: resolver.TypeTXT, Kind: resolver.ErrServFail}
	case strings.HasPrefix(text, "fail:"):
		// A permanent fetch failure: "fail:webpki", "fail:invalid" or
		// "fail:404".
		err := fmt.Errorf("%w: %s", mtasts.ErrFetch, text)
		switch text {
		case "fail:webpki":
			err = fmt.Errorf("%w (%w)", err, mtasts.ErrWebPKI)
		case "fail:invalid":
			err = fmt.Errorf("%w (%w)", err, mtasts.ErrPolicyInvalid)
		}
		return mtasts.Result{Domain: domain, Source: mtasts.SourceNone, Reason: err.Error(), FetchErr: err, TTL: time.Minute}, nil
	}
	p, err := mtasts.ParsePolicy([]byte(text))
	if err != nil {
		panic(err)
	}
	return mtasts.Result{Domain: domain, Policy: p, ID: "id1", Source: mtasts.SourceFetched,
		Expires: time.Now().Add(p.MaxAge), TTL: 5 * time.Minute}, nil
}

const enforceMX = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmx: *.example.net\nmax_age: 86400\n"

func stsEnv(t *testing.T, f *fakeSTS, disable string) *Env {
	env := TestEnv(testZone(), nil)
	sts := &STS{Lookup: f, Domains: MustList("*", false)}
	if disable != "" {
		sts.Disable = MustList(disable, false)
	}
	env.Decider = NewDecider(testZone(), DeciderOptions{STS: sts})
	return env
}

// TestSTSDecisions: DANE wins; without usable DANE an enforce policy
// gives Postfix "secure match=…", Exim "verify"; testing and none leave
// the MTA's default; a temporary failure defers; [host] next hops and
// disabled domains are not looked up.
func TestSTSDecisions(t *testing.T) {
	f := &fakeSTS{policies: map[string]string{
		"dane.example.com":     enforceMX, // DANE wins
		"notlsa.example.com":   enforceMX,
		"unusable.example.com": enforceMX, // secure TLSA RRset, all unusable: DANE's encrypt wins
		"plain.example.com":    "version: STSv1\nmode: testing\nmx: plain.example.com\nmax_age: 86400\n",
		"cname2.example.com":   "version: STSv1\nmode: none\nmax_age: 86400\n",
		"mixed.example.com":    "temp",
		"mxfail.example.com":   enforceMX,
		"off.example.com":      enforceMX,
	}}
	env := stsEnv(t, f, "off.example.com")
	_, addr := startServer(t, env)
	tests := []reqReply{
		{ns("policy dane.example.com"), "OK dane-only"},
		{ns("policy notlsa.example.com"), "OK secure match=mx.example.org:.example.net servername=hostname"},
		{"get notlsa.example.com\n", "200 secure%20match=mx.example.org:.example.net%20servername=hostname\n"},
		{"dane notlsa.example.com\n", "verify MTA-STS policy id1 in enforce mode"},
		{"sts notlsa.example.com\n", "enforce mx.example.org:*.example.net\n"},
		{ns("sts notlsa.example.com"), "OK enforce mx.example.org:*.example.net"},
		{"stsignore notlsa.example.com\n", `enforce <;!^mx\.example\.org$;!^[^.]+\.example\.net$;*` + "\n"},
		{"stsignore plain.example.com\n", "testing "},
		{"stsignore mxfail.example.com\n", "defer "},
		{ns("dane notlsa.example.com"), "OK verify"},
		{ns("policy unusable.example.com"), "OK encrypt"},
		{"dane unusable.example.com\n", "encrypt "},
		{ns("policy plain.example.com"), "NOTFOUND "},
		{"sts plain.example.com\n", "testing "},
		{ns("sts plain.example.com"), "NOTFOUND "},
		{ns("policy cname2.example.com"), "OK dane-only"}, // DANE at the original name
		{ns("policy mixed.example.com"), "OK dane"},       // DANE wins before STS is asked
		{ns("policy mxfail.example.com"), "TEMP "},        // the MX lookup failed: DANE's defer
		{ns("policy off.example.com"), "NOTFOUND "},
		{ns("policy [notlsa.example.com]"), "NOTFOUND "},
	}
	expectReplies(t, addr, tests)
	d, _ := env.Decider.Decide(context.Background(), "plain.example.com")
	if d.STS.Mode() != mtasts.ModeTesting || d.Level != LevelNone {
		t.Errorf("testing policy: level %s, STS mode %q; want none with the testing policy remembered", d.Level, d.STS.Mode())
	}
	if d, _ := env.Decider.Decide(context.Background(), "dane.example.com"); d.STS != nil {
		t.Errorf("DANE next hop asked MTA-STS: %+v", d.STS)
	}
	d, _ = env.Decider.Decide(context.Background(), "notlsa.example.com")
	if x := d.Explain(); !strings.Contains(x, "MTA-STS:   policy id1, mode enforce") || !strings.Contains(x, "policy:    secure match=") {
		t.Errorf("Explain:\n%s", x)
	}
}

// reqReply is a request to the policy socket and the start of its reply.
type reqReply struct{ req, want string }

// expectReplies sends each request on its own connection and checks the
// start of the reply (netstrings decoded).
func expectReplies(t *testing.T, addr string, tests []reqReply) {
	t.Helper()
	for _, tt := range tests {
		if got := exchange(t, addr, tt.req); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.req, got, tt.want)
		}
	}
}

// TestSTSTemporaryFailureDefers: with no usable DANE, a failed MTA-STS
// lookup defers (TEMP, 400, defer) in every protocol, and is cached as a
// failure: one lookup for the four requests (RFC 9520).
func TestSTSTemporaryFailureDefers(t *testing.T) {
	f := &fakeSTS{policies: map[string]string{"notlsa.example.com": "temp"}}
	env := stsEnv(t, f, "")
	_, addr := startServer(t, env)
	expectReplies(t, addr, []reqReply{
		{ns("policy notlsa.example.com"), "TEMP MTA-STS policy lookup failed"},
		{"get notlsa.example.com\n", "400 "},
		{"dane notlsa.example.com\n", "defer "},
		{"sts notlsa.example.com\n", "defer "},
	})
	if n := f.n.Load(); n != 1 {
		t.Errorf("%d lookups, want 1: the failure is cached for dane_cache_failure_ttl", n)
	}
}

// BenchmarkSocketmapLoadSTS is BenchmarkSocketmapLoad for a next hop
// whose answer comes from a cached MTA-STS enforce policy.
//
//	go test -run '^$' -bench 'SocketmapLoad' -benchtime 200000x ./tlspolicy/
func BenchmarkSocketmapLoadSTS(b *testing.B) {
	for _, conns := range []int{1, 4, 16} {
		b.Run(strconv.Itoa(conns)+"conns", func(b *testing.B) {
			env := TestEnv(testZone(), nil)
			sts := &STS{Lookup: &fakeSTS{policies: map[string]string{"notlsa.example.com": enforceMX}}}
			env.Decider = NewDecider(testZone(), DeciderOptions{STS: sts})
			socketmapLoad(b, conns, env, "notlsa.example.com", "OK secure match=mx.example.org:.example.net servername=hostname")
		})
	}
}

// TestEximIgnoreHostsAgreesWithPolicy: the host list of "stsignore", read
// as Exim reads ignore_target_hosts (first match wins, "!" keeps the
// host), keeps exactly the MX hosts the policy's own matcher allows.
func TestEximIgnoreHostsAgreesWithPolicy(t *testing.T) {
	p, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: mx.example.org\nmx: *.example.net\nmax_age: 86400\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Decision{Level: LevelSecure, STS: &STSDecision{Policy: p}}
	list, ok := strings.CutPrefix(d.EximIgnoreHosts(), "enforce <;")
	if !ok {
		t.Fatalf("answer %q", d.EximIgnoreHosts())
	}
	ignored := func(host string) bool {
		for _, item := range strings.Split(list, ";") {
			neg := strings.HasPrefix(item, "!")
			item = strings.TrimPrefix(item, "!")
			if item == "*" || regexp.MustCompile(item).MatchString(host) {
				return !neg
			}
		}
		return false
	}
	for _, host := range []string{"mx.example.org", "a.example.net", "a.b.example.net", "example.net", "xmx.example.org", "mx.example.org.evil.test", "mx-example.org"} {
		_, allowed := p.MatchMX(host)
		if ignored(host) == allowed {
			t.Errorf("%s: ignored %v, but the policy allows it: %v", host, ignored(host), allowed)
		}
	}
}
