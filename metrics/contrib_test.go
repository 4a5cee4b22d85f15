package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

const (
	alertRules = "../contrib/prometheus/sidecar-alerts.yml"
	dashboard  = "../contrib/grafana/sidecar-dashboard.json"
)

// families returns the names of every metric family sidecar exposes.
func families(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.PolicyAnswered("socketmap", &tlspolicy.Decision{Level: tlspolicy.LevelNone}, nil, time.Millisecond)
	m.ConfigLoaded(nil, false)
	m.WatchConnections("milter", func() int { return 0 })
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

var metricName = regexp.MustCompile(`\bsidecar_[a-z_]+`)

// checkNames fails for every sidecar_ metric that text names and sidecar
// does not expose, and returns how many it names.
func checkNames(t *testing.T, what, text string) int {
	t.Helper()
	have := families(t)
	n := 0
	for _, name := range metricName.FindAllString(text, -1) {
		n++
		base := name
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if strings.HasSuffix(name, suf) && have[strings.TrimSuffix(name, suf)] {
				base = strings.TrimSuffix(name, suf)
			}
		}
		if !have[base] {
			t.Errorf("%s names %s, which sidecar does not expose", what, name)
		}
	}
	return n
}

// TestAlertRules runs promtool check rules on contrib's alerting rules
// and checks that they name only metrics sidecar exposes.
func TestAlertRules(t *testing.T) {
	src, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	if checkNames(t, alertRules, string(src)) == 0 {
		t.Errorf("%s names no sidecar metric", alertRules)
	}
	for _, alert := range []string{"SidecarDNSFailing", "SidecarTempfailRate", "SidecarDMARCRejectSpike", "SidecarReloadFailed"} {
		if !strings.Contains(string(src), "alert: "+alert+"\n") {
			t.Errorf("%s has no alert %s", alertRules, alert)
		}
	}
	const promtool = "/usr/bin/promtool"
	if _, err := os.Stat(promtool); err != nil {
		reason := promtool + " is missing (apt-get install prometheus)"
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s", reason)
		}
		fmt.Println("skipping promtool check rules:", reason)
		t.Skip(reason)
	}
	out, err := exec.Command(promtool, "check", "rules", alertRules).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// TestDashboard: contrib's Grafana dashboard is JSON whose every query
// names metrics sidecar exposes.
func TestDashboard(t *testing.T) {
	src, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(src, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.Title == "" || len(d.Panels) < 10 {
		t.Errorf("%s: title %q, %d panels", dashboard, d.Title, len(d.Panels))
	}
	named := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			named += checkNames(t, "panel "+p.Title, q.Expr)
		}
	}
	if named < 20 {
		t.Errorf("the dashboard names sidecar metrics %d times", named)
	}
}
