package aggregate

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/report/store"
)

// BenchmarkAggregateDay10M builds and compresses the reports of 10,000
// policy domains from one day of 10,000,000 messages (5 sources per
// domain, one message every 8.64 ms), and reports the CPU and the wall
// seconds that takes. The history is imported once, streamed through a
// pipe, before the timer starts (a minute or two); skipped with -short.
func BenchmarkAggregateDay10M(b *testing.B) {
	if testing.Short() {
		b.Skip("imports 10,000,000 messages")
	}
	const messages, domains = 10000000, 10000
	s := openStore(b)
	spec := historygen.Spec{Records: messages, Domains: domains, Sources: 5, Start: day, Step: 8640 * time.Microsecond, Reporter: "mx1.example"}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(spec.Write(pw)) }()
	if res, err := s.Import(context.Background(), pr, "day", nil); err != nil || res.Added != messages {
		b.Fatalf("import: %+v %v", res, err)
	}
	b.ResetTimer()
	var cpu, wall time.Duration
	for i := 0; i < b.N; i++ {
		start, cpu0 := time.Now(), cpuTime()
		reports, counted := buildDay(b, s)
		cpu += cpuTime() - cpu0
		wall += time.Since(start)
		if reports != domains || counted != messages {
			b.Fatalf("%d reports counting %d messages, want %d and %d", reports, counted, domains, messages)
		}
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
}

// buildDay builds and compresses the reports of the day, and returns how
// many there were and how many messages they count.
func buildDay(b *testing.B, s *store.Store) (reports int, messages int64) {
	bl := &Builder{Reporter: reporter, Begin: day, End: day.Add(24 * time.Hour), Emit: func(r *Report) error {
		reports++
		for _, rec := range r.Records {
			messages += int64(rec.Row.Count)
		}
		_, err := r.Gzip()
		return err
	}}
	if err := s.Groups(context.Background(), day, day.Add(24*time.Hour), "", bl.Add); err != nil {
		b.Fatal(err)
	}
	if err := bl.Flush(); err != nil {
		b.Fatal(err)
	}
	return reports, messages
}
