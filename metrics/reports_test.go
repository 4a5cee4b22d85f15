package metrics_test

import (
	"sync/atomic"
	"testing"

	"github.com/mailsidecar/sidecar/metrics"
)

// TestReportMetrics: the spool depth and the report counts are read at
// each scrape, one series per result of the fixed set.
func TestReportMetrics(t *testing.T) {
	m := metrics.New()
	var depth atomic.Int64
	counts := map[string]*atomic.Uint64{"spooled": {}, "sent": {}, "rate_limited": {}}
	m.WatchReports("failure", []string{"spooled", "sent", "rate_limited"}, func() int { return int(depth.Load()) },
		func(r string) uint64 { return counts[r].Load() })
	expect(t, scrape(t, m.Handler()), []sample{
		{"sidecar_report_spool_depth", []string{"kind", "failure"}, 0},
		{"sidecar_reports_total", []string{"kind", "failure", "result", "sent"}, 0},
	})
	depth.Store(7)
	counts["spooled"].Add(9)
	counts["sent"].Add(2)
	counts["rate_limited"].Add(40)
	expect(t, scrape(t, m.Handler()), []sample{
		{"sidecar_report_spool_depth", []string{"kind", "failure"}, 7},
		{"sidecar_reports_total", []string{"kind", "failure", "result", "spooled"}, 9},
		{"sidecar_reports_total", []string{"kind", "failure", "result", "sent"}, 2},
		{"sidecar_reports_total", []string{"kind", "failure", "result", "rate_limited"}, 40},
		{"sidecar_reports_total", []string{"kind", "failure", "result", "expired"}, -1},
	})
}
