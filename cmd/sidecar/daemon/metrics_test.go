package daemon

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonMetricsEndpoint runs the daemon with metrics_listen, asks the
// policy socket once, and finds the answer, the DNS queries behind it,
// the open connections and the configuration hash on /metrics; /healthz
// and /readyz answer ok; a reload with an error counts as failed.
func TestDaemonMetricsEndpoint(t *testing.T) {
	dns := dnstest.NewServer(t, dnstest.NewZone().Add(`example.com. MX 10 mx.example.com.`, `mx.example.com. A 192.0.2.25`))
	dir := t.TempDir()
	path := filepath.Join(dir, "sidecar.conf")
	conf := "milter_listen = inet:127.0.0.1:0\npolicy_listen = inet:127.0.0.1:0\nmetrics_listen = inet:127.0.0.1:0\ndns_servers = " + dns.Addr() + "\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(path, registry(), io.Discard)
	if err == nil {
		err = d.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown() })
	base := "http://" + d.Addrs("metrics_listen")[0].String()

	c, err := net.Dial("tcp", d.Addrs("policy_listen")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "get example.com\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "500 ") {
		t.Fatalf("tcp_table answer %q, %v", line, err)
	}

	code, body := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`sidecar_policy_answers_total{policy="none",protocol="tcp_table",reason="mx_insecure"} 1`,
		`sidecar_dns_queries_total{rcode="NOERROR",type="MX"} 1`,
		`sidecar_open_connections{listener="policy"} 1`,
		`sidecar_open_connections{listener="milter"} 0`,
		`sidecar_config_reloads_total{result="failed"} 0`,
		`sidecar_config_info{hash="`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}

	os.WriteFile(path, []byte(conf+"dns_timeout = 5x\n"), 0o644)
	if d.Reload() == nil {
		t.Fatal("a bad configuration reloaded")
	}
	os.WriteFile(path, []byte(conf+"dns_timeout = 3s\n"), 0o644)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	_, body = httpGet(t, base+"/metrics")
	for _, want := range []string{`sidecar_config_reloads_total{result="failed"} 1`, `sidecar_config_reloads_total{result="ok"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics after reloads lacks %s", want)
		}
	}
	if strings.Count(body, "sidecar_config_info{") != 1 {
		t.Errorf("sidecar_config_info has other than one series after a reload")
	}
}

// TestMetricsListenTCPOnly: a unix socket for metrics_listen is an error at
// its position.
func TestMetricsListenTCPOnly(t *testing.T) {
	cfg, err := config.Load("m.conf", []byte("metrics_listen = unix:/run/sidecar/metrics\n"))
	if err == nil {
		t.Fatal("unix metrics_listen accepted")
	}
	got := config.AsList(err)[0].Error()
	if !strings.HasPrefix(got, "m.conf:1:18: metrics_listen: unix:/run/sidecar/metrics is not a TCP listener") {
		t.Errorf("error %q", got)
	}
	_ = cfg
}
