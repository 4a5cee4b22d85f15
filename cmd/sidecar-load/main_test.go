package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseReport reads the "key: value" lines of a report; a value's first
// word is kept.
func parseReport(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("report line %q is not \"key: value\"", line)
		}
		m[k] = strings.Fields(v)[0]
	}
	return m
}

func number(t *testing.T, rep map[string]string, key string) float64 {
	t.Helper()
	v, ok := rep[key]
	if !ok {
		t.Fatalf("report has no %q", key)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", key, v)
	}
	return f
}

// TestSelfRun runs the generator for a second against an in-process
// sidecar (embedded default configuration, fake DNS) and checks that its
// report parses and that every message got through with our
// Authentication-Results header.
func TestSelfRun(t *testing.T) {
	var out, errs bytes.Buffer
	code := cli(context.Background(), []string{"-self", "-d", "1s", "-c", "4", "-per-conn", "3", "-corpus", "20", "-size", "4096"}, &out, &errs)
	t.Logf("report:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	rep := parseReport(t, out.String())
	msgs := number(t, rep, "messages")
	if msgs < 1 {
		t.Fatalf("no message was sent")
	}
	if e := number(t, rep, "errors"); e != 0 {
		t.Errorf("%v errors: %s", e, rep["first_error"])
	}
	if r := number(t, rep, "refused"); r != 0 {
		t.Errorf("%v messages refused by the default configuration", r)
	}
	if ar := number(t, rep, "authres"); ar != msgs {
		t.Errorf("%v of %v messages got an Authentication-Results header", ar, msgs)
	}
	if w := number(t, rep, "warmup"); w != 20 {
		t.Errorf("warm-up of %v messages, want the corpus size 20", w)
	}
	if s := number(t, rep, "elapsed"); s < 0.9 || s > 5 {
		t.Errorf("elapsed %v s for -d 1s", s)
	}
	if tp := number(t, rep, "throughput"); tp <= 0 {
		t.Errorf("throughput %v", tp)
	}
	p50, p99, mx := number(t, rep, "latency_p50"), number(t, rep, "latency_p99"), number(t, rep, "latency_max")
	if !(0 < p50 && p50 <= p99 && p99 <= mx) {
		t.Errorf("latencies p50 %v p99 %v max %v ms", p50, p99, mx)
	}
	if rss := number(t, rep, "rss_max"); rss < 1 || rss > 2048 {
		t.Errorf("rss_max %v MiB", rss)
	}
	if sz := number(t, rep, "message_size"); sz < 4000 || sz > 4200 {
		t.Errorf("message_size %v, want about 4096", sz)
	}
}

// TestRateAndIdle runs a fixed rate after holding the connections idle,
// against the in-process sidecar through the fake DNS on its own address.
func TestRateAndIdle(t *testing.T) {
	var out, errs bytes.Buffer
	code := cli(context.Background(), []string{"-self", "-n", "60", "-rate", "200", "-c", "5", "-idle", "100ms",
		"-per-conn", "0", "-pipeline", "-warmup", "0", "-corpus", "10"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	rep := parseReport(t, out.String())
	if n := number(t, rep, "messages"); n != 60 {
		t.Errorf("%v messages, want 60", n)
	}
	// 60 messages at 200/s take about 0.3 s.
	if s := number(t, rep, "elapsed"); s < 0.25 || s > 5 {
		t.Errorf("elapsed %v s", s)
	}
	if c := rep["connections"]; c != "5" {
		t.Errorf("connections %q", c)
	}
	if _, ok := rep["rss_idle"]; !ok {
		t.Errorf("no rss_idle with -idle")
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"inet:127.0.0.1:8894", "tcp", "127.0.0.1:8894"},
		{"inet:[::1]:8894", "tcp", "[::1]:8894"},
		{"inet:8894@127.0.0.1", "tcp", "127.0.0.1:8894"},
		{"inet6:8894@::1", "tcp", "[::1]:8894"},
		{"unix:/run/sidecar/milter.sock", "unix", "/run/sidecar/milter.sock"},
		{"local:/run/sidecar/milter.sock", "unix", "/run/sidecar/milter.sock"},
		{"127.0.0.1:8894", "tcp", "127.0.0.1:8894"},
	} {
		got, err := parseAddr(tc.in)
		if err != nil || got.network != tc.network || got.address != tc.address {
			t.Errorf("parseAddr(%q) = %v, %v; want %s %s", tc.in, got, err, tc.network, tc.address)
		}
	}
	for _, bad := range []string{"", "inet:nope", "http://x", "8894"} {
		if _, err := parseAddr(bad); err == nil {
			t.Errorf("parseAddr(%q) gave no error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestCorpusSize(t *testing.T) {
	for _, size := range []int{1024, 10240, 100000} {
		for _, m := range buildCorpus(7, 5, size, 3, 2) {
			if m.size < size-80 || m.size > size {
				t.Errorf("-size %d: message of %d bytes", size, m.size)
			}
			if len(m.rcpts) != 2 || !bytes.HasSuffix(m.body, []byte("\r\n")) || bytes.Contains(m.body, []byte("\r\r")) {
				t.Errorf("-size %d: bad message %+v", size, m.rcpts)
			}
		}
	}
}

// TestNullMilter runs the baseline milter and drives it with a connection
// per message: every message gets through with its one header field.
func TestNullMilter(t *testing.T) {
	sock := t.TempDir() + "/null.sock"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var nullOut, nullErr bytes.Buffer
	go func() { done <- cli(ctx, []string{"-null-milter", "unix:" + sock}, &nullOut, &nullErr) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("null milter exit %d: %s", code, nullErr.String())
		}
	}()
	for i := 0; ; i++ {
		// The socket file exists from bind(2) on, before listen(2): wait
		// until a connection is taken.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatal("null milter not listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out, errs bytes.Buffer
	code := cli(context.Background(), []string{"-addr", "unix:" + sock, "-n", "30", "-c", "3", "-per-conn", "1", "-warmup", "0", "-corpus", "5"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	rep := parseReport(t, out.String())
	t.Logf("report:\n%s", out.String())
	if n, ar, c := number(t, rep, "messages"), number(t, rep, "authres"), rep["connections"]; n != 30 || ar != 30 || c != "3" {
		t.Errorf("messages %v, with Authentication-Results %v, connections %s", n, ar, c)
	}
}

// TestDKIMCorpus signs the corpus and checks that sidecar verifies every
// signature (dkim=pass in its Authentication-Results); -dkim without a
// fake zone to publish the key is a usage error.
func TestDKIMCorpus(t *testing.T) {
	var out, errs bytes.Buffer
	code := cli(context.Background(), []string{"-self", "-dkim", "-n", "40", "-c", "4", "-corpus", "10", "-size", "4096"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	rep := parseReport(t, out.String())
	if n, pass := number(t, rep, "messages"), number(t, rep, "dkim_pass"); n != 40 || pass != 40 {
		t.Errorf("%v messages, %v with dkim=pass", n, pass)
	}
	errs.Reset()
	if code := cli(context.Background(), []string{"-dkim", "-addr", "inet:127.0.0.1:1"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "-dkim needs") {
		t.Errorf("-dkim without a fake zone: exit %d, %q", code, errs.String())
	}
}
