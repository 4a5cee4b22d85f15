package tlspolicy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSocketmapLoad is the load generator of the policy socket: C
// persistent socketmap connections, each sending one request and waiting
// for its answer before the next (as Postfix's smtp processes do), for a
// cached decision. It reports answers per second and the median and 99th
// percentile of the request latency, at 1, 4, 16 and 64 connections.
//
// The clients run in a process of their own (this test binary again), as
// the MTA's do: clients in the server's process compete with it for the
// Go scheduler, which looks for ready network connections mostly when it
// runs out of other work, and the tail measured was the scheduler's (p99
// 4–7 ms at 16 connections in-process, 1 ms from another process, with
// the same server).
//
//	go test -run '^$' -bench 'SocketmapLoad$' -benchtime 200000x ./tlspolicy/
func BenchmarkSocketmapLoad(b *testing.B) {
	for _, conns := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("%dconns", conns), func(b *testing.B) {
			socketmapLoad(b, conns, TestEnv(testZone(), nil), "dane.example.com", "OK dane-only")
		})
	}
}

// socketmapLoad serves env and has a client process send b.N requests
// for nexthop over conns connections, each reply checked against answer.
func socketmapLoad(b *testing.B, conns int, env *Env, nexthop, answer string) {
	// Warm the cache.
	if d, _ := env.Decider.Decide(context.Background(), nexthop); d.Level == LevelTemp {
		b.Fatal(d.Reason)
	}
	addr := serveLoad(b, env)
	res := runLoadClient(b, loadSpec{Addr: addr, Conns: conns, N: b.N,
		Pairs: []loadPair{{Req: "policy " + nexthop, Want: answer}}})
	b.ReportMetric(res.rate(), "answers/s")
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
}

// serveLoad starts a policy server for env on loopback until the
// benchmark or test ends.
func serveLoad(tb testing.TB, env *Env) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := NewServer(func() *Env { return env })
	go s.Serve(l)
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	return l.Addr().String()
}

// loadSpec is the work of a load client process: Conns connections to
// Addr sending, in turn, the socketmap requests of Pairs, N requests in
// all or for Duration when it is set.
type loadSpec struct {
	Addr     string
	Conns    int
	N        int
	Duration time.Duration
	WarmUp   time.Duration // loadResult.MaxLate counts requests sent after it
	Pairs    []loadPair
}

// loadPair is a socketmap request ("NAME KEY") and the start of the
// reply it must get.
type loadPair struct{ Req, Want string }

// loadResult is what a load client measured.
type loadResult struct {
	Answers  int
	Elapsed  time.Duration
	P50, P99 time.Duration
	Max      time.Duration
	MaxLate  time.Duration // the slowest request sent after the warm-up
	Wrong    []string      // the first wrong replies
}

func (r loadResult) rate() float64 { return float64(r.Answers) / r.Elapsed.Seconds() }

const loadSpecEnv = "SIDECAR_TEST_LOAD_SPEC"

// runLoadClient runs a load client process for spec. The benchmark's
// timer runs while the client sends, its connections already open.
func runLoadClient(tb testing.TB, spec loadSpec) loadResult {
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLoadClient$", "-test.v")
	cmd.Env = append(os.Environ(), loadSpecEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer cmd.Wait()
	out := bufio.NewReader(stdout)
	line := func() string {
		for {
			s, err := out.ReadString('\n')
			if err != nil {
				tb.Fatalf("load client: %v", err)
			}
			if v, ok := strings.CutPrefix(s, "LOAD "); ok {
				return v
			}
		}
	}
	if r := line(); r != "ready\n" {
		tb.Fatalf("load client: %q", r)
	}
	b, _ := tb.(*testing.B)
	if b != nil {
		b.ResetTimer()
	}
	io.WriteString(stdin, "go\n")
	var res loadResult
	if err := json.Unmarshal([]byte(line()), &res); err != nil {
		tb.Fatalf("load client result: %v", err)
	}
	if b != nil {
		b.StopTimer()
	}
	if len(res.Wrong) > 0 {
		tb.Fatalf("%d answers, wrong replies: %q", res.Answers, res.Wrong)
	}
	return res
}

// TestLoadClient is the load client process of runLoadClient; it does
// nothing in an ordinary test run.
func TestLoadClient(t *testing.T) {
	js := os.Getenv(loadSpecEnv)
	if js == "" {
		t.Skip("the load client process of the load benchmarks")
	}
	var spec loadSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		t.Fatal(err)
	}
	clients := make([]net.Conn, spec.Conns)
	for i := range clients {
		c, err := net.Dial("tcp", spec.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	fmt.Println("LOAD ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	res := sendLoad(spec, clients)
	js2, _ := json.Marshal(res)
	fmt.Printf("LOAD %s\n", js2)
}

// sendLoad sends the requests of spec over clients and measures them.
func sendLoad(spec loadSpec, clients []net.Conn) loadResult {
	reqs := make([][]byte, len(spec.Pairs))
	for i, p := range spec.Pairs {
		reqs[i] = []byte(ns(p.Req))
	}
	per := spec.N/len(clients) + 1
	var deadline time.Time
	if spec.Duration > 0 {
		per, deadline = 1<<62, time.Now().Add(spec.Duration)
	}
	var mu sync.Mutex
	var res loadResult
	lat := make([][]time.Duration, len(clients))
	late := make([]time.Duration, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			l := make([]time.Duration, 0, min(per, 1<<20))
			for n := 0; n < per; n++ {
				k := (n + i) % len(reqs)
				t0 := time.Now()
				if !deadline.IsZero() && t0.After(deadline) {
					break
				}
				_, err := c.Write(reqs[k])
				var got string
				if err == nil {
					got, err = readNetstring(br, MaxRequest)
				}
				took := time.Since(t0)
				l = append(l, took)
				if spec.WarmUp > 0 && t0.Sub(start) > spec.WarmUp && took > late[i] {
					late[i] = took
				}
				if err != nil || !strings.HasPrefix(got, spec.Pairs[k].Want) {
					mu.Lock()
					if len(res.Wrong) < 5 {
						res.Wrong = append(res.Wrong, fmt.Sprintf("%s: %q (%v), want %q", spec.Pairs[k].Req, got, err, spec.Pairs[k].Want))
					}
					mu.Unlock()
					if err != nil {
						break
					}
				}
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.MaxLate = slices.Max(late)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if res.Answers = len(all); res.Answers > 0 {
		res.P50, res.P99, res.Max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	}
	return res
}

const loadServeEnv = "SIDECAR_TEST_LOAD_SERVE"

// TestLoadServer is the policy server of scripts/callgrind-policy.sh,
// measured alone: it serves the test zone with a warm cache on loopback,
// writes its address to the file $SIDECAR_TEST_LOAD_SERVE and serves
// until its standard input closes. It does nothing in an ordinary test
// run.
func TestLoadServer(t *testing.T) {
	path := os.Getenv(loadServeEnv)
	if path == "" {
		t.Skip("the policy server process of scripts/callgrind-policy.sh")
	}
	env := TestEnv(testZone(), nil)
	if d, _ := env.Decider.Decide(context.Background(), "dane.example.com"); d.Level != LevelDANEOnly {
		t.Fatal(d.Reason)
	}
	addr := serveLoad(t, env)
	if err := os.WriteFile(path, []byte(addr), 0o644); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin)
}
