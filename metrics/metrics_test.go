package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/stage"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

// scrape fetches /metrics from h and parses it with expfmt.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name with the given
// labels (all of them), or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if len(have) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// sample is the value a series should have.
type sample struct {
	name   string
	labels []string
	want   float64
}

func expect(t *testing.T, fams map[string]*dto.MetricFamily, samples []sample) {
	t.Helper()
	for _, c := range samples {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

const conf = `
acl_smtp_rcpt = rcpt
acl_smtp_data = data
begin acl
rcpt:
  deny    local_parts = nobody
  accept
data:
  deny    dmarc_status = reject
  accept
`

// TestMessageMetrics sends three messages through the stage driver the
// milter uses, with a real resolver on a loopback DNS server, and reads
// the counts back from /metrics.
func TestMessageMetrics(t *testing.T) {
	zone := dnstest.NewZone().Add(
		`pass.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.pass.example. TXT "v=DMARC1; p=reject"`,
		`fail.example. TXT "v=spf1 -all"`,
		`_dmarc.fail.example. TXT "v=DMARC1; p=reject"`,
	)
	srv := dnstest.NewServer(t, zone)
	m := metrics.New()
	res, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	reg := acl.NewRegistry()
	checks.Register(reg)
	cfg, err := config.Load("test.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := acl.Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	svc := &acl.Services{DNS: res, PrimaryHostname: "mx.example.org", AuthservID: "mx.example.org", Now: time.Now}
	env := &stage.Env{Program: prog, Services: svc, Observer: m}
	ctx := context.Background()
	send := func(from, rcpt string) {
		drv := stage.New(env)
		defer drv.Close()
		drv.Connect(ctx, stage.Client{IP: netip.MustParseAddr("192.0.2.1")})
		drv.Helo(ctx, "client.example")
		drv.Mail(ctx, from, "")
		drv.Rcpt(ctx, rcpt)
		if len(drv.Txn.Recipients) == 0 {
			return // the connection closes: the message ends refused at RCPT
		}
		drv.Header("From", " "+from)
		drv.Header("Subject", " test")
		drv.EndOfHeader()
		drv.Body([]byte("hello\r\n"))
		drv.EndOfMessage(ctx, "")
	}
	send("alice@pass.example", "bob@example.org")
	send("mallory@fail.example", "bob@example.org")
	send("alice@pass.example", "nobody@example.org")
	send("alice@pass.example", "carol@example.org")

	fams := scrape(t, m.Handler())
	expect(t, fams, []sample{
		{"sidecar_messages_total", []string{"verdict", "accept", "stage", "data"}, 2},
		{"sidecar_messages_total", []string{"verdict", "deny", "stage", "data"}, 1},
		{"sidecar_messages_total", []string{"verdict", "deny", "stage", "rcpt"}, 1},
		{"sidecar_messages_total", []string{"verdict", "defer", "stage", "data"}, 0},
		{"sidecar_spf_results_total", []string{"result", "pass"}, 2},
		{"sidecar_spf_results_total", []string{"result", "fail"}, 1},
		{"sidecar_dkim_signatures_total", []string{"result", "none"}, 3},
		{"sidecar_dmarc_results_total", []string{"result", "pass"}, 2},
		{"sidecar_dmarc_results_total", []string{"result", "fail"}, 1},
		{"sidecar_dmarc_dispositions_total", []string{"disposition", "reject"}, 1},
		{"sidecar_arc_overrides_total", nil, 0},
		{"sidecar_stage_duration_seconds", []string{"stage", "rcpt"}, 4},
		{"sidecar_stage_duration_seconds", []string{"stage", "data"}, 3},
		{"sidecar_dns_queries_total", []string{"type", "TXT", "rcode", "NOERROR"}, 4},
	})
	// The fourth message's SPF and DMARC records come from the cache.
	hits, misses := value(fams, "sidecar_dns_cache_hits_total"), value(fams, "sidecar_dns_cache_misses_total")
	if hits < 2 || misses < 4 {
		t.Errorf("DNS cache hits %v, misses %v; want at least 2 and 4", hits, misses)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "go_build_info"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// TestLabelsStayBounded: a token outside a label's set counts as "other",
// and policy answers are classed.
func TestLabelsStayBounded(t *testing.T) {
	m := metrics.New()
	m.Exchange(resolver.Type(65), 0, nil, time.Millisecond)
	m.Exchange(resolver.TypeTXT, 0, &resolver.QueryError{Kind: resolver.ErrServFail}, time.Millisecond)
	m.Exchange(resolver.TypeTLSA, 0, &resolver.QueryError{Kind: resolver.ErrTimeout, Err: context.DeadlineExceeded}, 2*time.Second)
	m.PolicyAnswered("socketmap", &tlspolicy.Decision{Level: tlspolicy.LevelDANEOnly, Mode: tlspolicy.ModeTry, MXLookup: true, MXSecure: true}, nil, time.Millisecond)
	m.PolicyAnswered("tcp_table", &tlspolicy.Decision{Level: tlspolicy.LevelTemp, Mode: tlspolicy.ModeTry}, nil, time.Millisecond)
	m.PolicyAnswered("line", &tlspolicy.Decision{Level: tlspolicy.LevelNone, Mode: tlspolicy.ModeTry, MXLookup: true}, nil, time.Millisecond)
	m.PolicyAnswered("bogus", nil, errors.New("bad next hop"), time.Millisecond)
	m.ConfigLoaded([]byte("a"), false)
	m.ConfigLoaded([]byte("b"), true)
	m.ReloadFailed()
	fams := scrape(t, m.Handler())
	expect(t, fams, []sample{
		{"sidecar_dns_queries_total", []string{"type", "other", "rcode", "NOERROR"}, 1},
		{"sidecar_dns_queries_total", []string{"type", "TXT", "rcode", "SERVFAIL"}, 1},
		{"sidecar_dns_queries_total", []string{"type", "TLSA", "rcode", "timeout"}, 1},
		{"sidecar_dns_query_duration_seconds", []string{"type", "TLSA"}, 1},
		{"sidecar_policy_answers_total", []string{"protocol", "socketmap", "policy", "dane-only", "reason", "tlsa"}, 1},
		{"sidecar_policy_answers_total", []string{"protocol", "tcp_table", "policy", "temp", "reason", "dns_failure"}, 1},
		{"sidecar_policy_answers_total", []string{"protocol", "line", "policy", "none", "reason", "mx_insecure"}, 1},
		{"sidecar_policy_answers_total", []string{"protocol", "other", "policy", "error", "reason", "bad_request"}, 1},
		{"sidecar_config_reloads_total", []string{"result", "ok"}, 1},
		{"sidecar_config_reloads_total", []string{"result", "failed"}, 1},
	})
	// One config_info series: the hash of "b".
	if f := fams["sidecar_config_info"]; f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetLabel()[0].GetValue() != "3e23e8160039594a" {
		t.Errorf("sidecar_config_info: %v", f)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

// TestHealth: /healthz follows SetUp; /readyz is ready after a DNS
// answer within the interval, probes when there was none, and is not
// ready when the probe fails.
func TestHealth(t *testing.T) {
	m := metrics.New()
	h := m.Handler()
	if code, body := get(t, h, "/healthz"); code != 503 || !strings.Contains(body, "not bound") {
		t.Errorf("/healthz before start: %d %q", code, body)
	}
	m.SetUp("")
	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	probes := 0
	fail := errors.New("no DNS server answered")
	m.SetDNSProbe(func(ctx context.Context) error { probes++; return fail }, time.Minute)
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "no DNS server answered") || probes != 1 {
		t.Errorf("/readyz with DNS failing: %d %q after %d probes", code, body, probes)
	}
	m.SetDNSProbe(func(ctx context.Context) error { probes++; return nil }, time.Minute)
	if code, _ := get(t, h, "/readyz"); code != 200 || probes != 2 {
		t.Errorf("/readyz with DNS answering a probe: %d after %d probes", code, probes)
	}
	// The probe's answer counts for the interval: no second probe.
	if code, _ := get(t, h, "/readyz"); code != 200 || probes != 2 {
		t.Errorf("/readyz within the interval: %d after %d probes", code, probes)
	}
	// With a real resolver on a loopback server, and then without it.
	srv := dnstest.NewServer(t, dnstest.NewZone().Add(". NS a.root.example."))
	res, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Timeout: 200 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	m2 := metrics.New()
	m2.SetDNSProbe(res.Probe, time.Minute)
	if code, body := get(t, m2.Handler(), "/readyz"); code != 200 {
		t.Errorf("/readyz with a DNS server: %d %q", code, body)
	}
	srv.Close()
	m3 := metrics.New()
	m3.SetDNSProbe(res.Probe, time.Minute)
	if code, body := get(t, m3.Handler(), "/readyz"); code != 503 || !strings.Contains(body, "DNS not reachable") {
		t.Errorf("/readyz with the DNS server gone: %d %q", code, body)
	}
}

// TestServerAllowList: clients outside metrics_allow are disconnected
// before a byte of HTTP.
func TestServerAllowList(t *testing.T) {
	m := metrics.New()
	for _, c := range []struct {
		allow []netip.Prefix
		ok    bool
	}{
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, true},
		{[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, false},
		{nil, false},
	} {
		ln, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		s := metrics.NewServer(m.Handler())
		go s.Serve(ln, c.allow)
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if c.ok {
			if err != nil {
				t.Errorf("allow %v: %v", c.allow, err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "sidecar_messages_total") {
					t.Errorf("allow %v: %d", c.allow, resp.StatusCode)
				}
			}
		} else if err == nil {
			resp.Body.Close()
			t.Errorf("allow %v: a client outside it got %d", c.allow, resp.StatusCode)
		}
		s.Shutdown(context.Background())
	}
}
