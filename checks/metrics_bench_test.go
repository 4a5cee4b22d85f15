package checks

import (
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/stage"
)

// deliverObserver is the stage.Observer of deliver: nil but in
// BenchmarkInboundAuthMetrics.
var deliverObserver stage.Observer

// BenchmarkInboundAuthMetrics is BenchmarkInboundAuth with the daemon's
// metrics observing every stage and message. Compare the two side by
// side, interleaved (scripts/bench-metrics.sh).
func BenchmarkInboundAuthMetrics(b *testing.B) {
	m := metrics.New()
	deliverObserver = m
	defer func() { deliverObserver = nil }()
	benchInbound(b, true, msgdkim.CanonicalizationRelaxed)
	if len(scrapeCount(b, m)) == 0 {
		b.Fatal("no message counted")
	}
}

// scrapeCount returns the message counters that counted something.
func scrapeCount(b *testing.B, m *metrics.Metrics) []string {
	fams, err := m.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	var counted []string
	for _, f := range fams {
		if f.GetName() != "sidecar_messages_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetCounter().GetValue() > 0 {
				counted = append(counted, s.String())
			}
		}
	}
	return counted
}
