package main

// The metrics end to end: a known mix of messages through a real Postfix
// with sidecar as its milter, scraped by a real Prometheus (the Debian
// package, run by the test on loopback with a private data directory),
// whose HTTP API must then give back the counts sent.
//
//	client -> Postfix (smtpd_milters = sidecar) -> sink
//	Prometheus --scrape--> sidecar metrics_listen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// needBinary skips the test when a package's binary is missing, saying so
// on stdout, except under CI=true, where it fails.
func needBinary(t *testing.T, path, pkg, what string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	reason := fmt.Sprintf("%s is missing (apt-get install %s)", path, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", reason)
	}
	fmt.Println("skipping the "+what+":", reason)
	t.Skip(reason)
}

// startPrometheus runs Prometheus on a free loopback port, scraping target
// every second, and returns its base URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sidecar
    static_configs:
      - targets: ['`+target+`']
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))
	var log strings.Builder
	cmd := exec.Command("/usr/bin/prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s: %v\n%s", err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery returns the value of a PromQL expression of one series, or -1
// when it has none.
func promQuery(t *testing.T, base, expr string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", expr, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return -1
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", expr, s)
	}
	return v
}

func TestPrometheusScrapesPostfixTraffic(t *testing.T) {
	testmta.NeedPostfix(t, "Prometheus end-to-end test")
	needBinary(t, "/usr/bin/prometheus", "prometheus", "Prometheus end-to-end test")
	bin := buildBinary(t)
	zone := dnstest.NewZone().Add(
		`good.example. TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`_dmarc.good.example. TXT "v=DMARC1; p=reject"`,
		`spoof.example. TXT "v=spf1 -all"`,
		`_dmarc.spoof.example. TXT "v=DMARC1; p=reject"`,
	)
	dns := dnstest.NewServer(t, zone)
	path := filepath.Join(t.TempDir(), "sidecar.conf")
	conf := "milter_listen = inet:127.0.0.1:0\npolicy_listen =\nmetrics_listen = inet:127.0.0.1:0\ndns_servers = " + dns.Addr() + `
authserv_id = mx.example.net
acl_smtp_rcpt = rcpt
acl_smtp_data = data
begin acl
rcpt:
  deny    local_parts = nobody
  accept
data:
  deny    dmarc_status = reject
          message = 550 5.7.1 DMARC policy of $dmarc_used_domain
  accept
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "-config", path)
	milterAddr := d.boundAddr("milter_listen")
	metricsAddr := d.boundAddr("metrics_listen")
	d.waitFor(`sidecar started`)
	sink := testmta.StartSink(t)
	pf := arcPostfix(t, "mx.example.net", milterAddr, sink.Addr())
	prom := startPrometheus(t, metricsAddr)

	// The mix: 3 passing messages, 2 failing DMARC (p=reject, refused at
	// the end of data), 1 whose only recipient is refused.
	send := func(from, to string) error {
		return testmta.Submit(pf, testmta.Submission{Helo: "client.example", From: from, To: []string{to},
			Data: []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: metrics\r\nMessage-ID: <" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@test>\r\n\r\nhello\r\n")})
	}
	for i := 0; i < 3; i++ {
		if err := send("alice@good.example", "bob@example.net"); err != nil {
			t.Fatalf("passing message %d refused: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := send("mallory@spoof.example", "bob@example.net"); err == nil || !strings.Contains(err.Error(), "DMARC policy") {
			t.Fatalf("DMARC-failing message %d: %v", i, err)
		}
	}
	if err := send("alice@good.example", "nobody@example.net"); err == nil {
		t.Fatal("the refused recipient was accepted")
	}

	want := []struct {
		expr string
		want float64
	}{
		{`sidecar_messages_total{verdict="accept",stage="data"}`, 3},
		{`sidecar_messages_total{verdict="deny",stage="data"}`, 2},
		{`sidecar_messages_total{verdict="deny",stage="rcpt"}`, 1},
		{`sidecar_spf_results_total{result="pass"}`, 3},
		{`sidecar_spf_results_total{result="fail"}`, 2},
		{`sidecar_dmarc_results_total{result="pass"}`, 3},
		{`sidecar_dmarc_results_total{result="fail"}`, 2},
		{`sidecar_dmarc_dispositions_total{disposition="reject"}`, 2},
		{`sidecar_dkim_signatures_total{result="none"}`, 5},
		{`sum(sidecar_dns_queries_total{type="TXT"})`, 4},
		{`sidecar_stage_duration_seconds_count{stage="data"}`, 5},
		{`sidecar_stage_duration_seconds_count{stage="rcpt"}`, 6},
		{`sidecar_config_reloads_total{result="failed"}`, 0},
		{`up{job="sidecar"}`, 1},
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, w := range want {
		for {
			got := promQuery(t, prom, w.expr)
			if got == w.want {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s = %v in Prometheus, want %v", w.expr, got, w.want)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if got := promQuery(t, prom, `count(sidecar_config_info)`); got != 1 {
		t.Errorf("count(sidecar_config_info) = %v, want 1", got)
	}
}
