package tlspolicy

import (
	"bufio"
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkSocketmapLoad is the load generator of the policy socket: C
// persistent socketmap connections, each sending one request and waiting
// for its answer before the next (as Postfix's smtp processes do), for a
// cached decision. It reports answers per second and the 99th percentile
// of the request latency.
//
//	go test -run '^$' -bench SocketmapLoad -benchtime 200000x ./tlspolicy/
func BenchmarkSocketmapLoad(b *testing.B) {
	for _, conns := range []int{1, 4, 16} {
		b.Run(itoa(conns)+"conns", func(b *testing.B) {
			socketmapLoad(b, conns, TestEnv(testZone(), nil), "dane.example.com", "OK dane-only")
		})
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }
func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func socketmapLoad(b *testing.B, conns int, env *Env, nexthop, answer string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(func() *Env { return env })
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	req := []byte(ns("policy " + nexthop))
	want := ns(answer)
	// Warm the cache.
	if d, _ := env.Decider.Decide(context.Background(), nexthop); d.Level == LevelTemp {
		b.Fatal(d.Reason)
	}
	clients := make([]net.Conn, conns)
	for i := range clients {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	per := b.N/conns + 1
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			buf := make([]byte, len(want))
			l := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(br, buf); err != nil || string(buf) != want {
					b.Errorf("reply %q %v", buf, err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	p99 := all[len(all)*99/100]
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "answers/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
}
