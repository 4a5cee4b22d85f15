package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted
// latencies, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// writeReport prints the outcome as "key: value" lines, for people and
// for scripts (the test parses them).
func writeReport(w io.Writer, p plan, o *outcome, rss *rssSampler) {
	lat := slices.Clone(o.latencies)
	slices.Sort(lat)
	n := len(lat)
	fmt.Fprintf(w, "target: %s %s\n", p.target.network, p.target.address)
	each := "unlimited messages each"
	if p.perConn > 0 {
		each = fmt.Sprintf("%d messages each at most", p.perConn)
	}
	fmt.Fprintf(w, "connections: %d concurrent, %d opened, %s\n", p.conc, o.conns, each)
	fmt.Fprintf(w, "message_size: %d bytes\n", avgSize(p.corpus))
	fmt.Fprintf(w, "messages: %d\n", n)
	fmt.Fprintf(w, "refused: %d\n", o.refused)
	fmt.Fprintf(w, "errors: %d\n", o.errors)
	fmt.Fprintf(w, "authres: %d\n", o.withAR)
	if p.dkim {
		fmt.Fprintf(w, "dkim_pass: %d\n", o.dkimPass)
	}
	fmt.Fprintf(w, "elapsed: %.3f s\n", o.elapsed.Seconds())
	rate := 0.0
	if o.elapsed > 0 {
		rate = float64(n) / o.elapsed.Seconds()
	}
	fmt.Fprintf(w, "throughput: %.1f msg/s\n", rate)
	if p.rate > 0 {
		fmt.Fprintf(w, "offered_rate: %.1f msg/s\n", p.rate)
	}
	fmt.Fprintf(w, "latency_p50: %s ms\n", ms(percentile(lat, 50)))
	fmt.Fprintf(w, "latency_p90: %s ms\n", ms(percentile(lat, 90)))
	fmt.Fprintf(w, "latency_p99: %s ms\n", ms(percentile(lat, 99)))
	fmt.Fprintf(w, "latency_max: %s ms\n", ms(percentile(lat, 100)))
	if rss != nil {
		idle, peak := rss.result()
		if p.idle > 0 {
			fmt.Fprintf(w, "rss_idle: %.1f MiB\n", float64(idle)/(1<<20))
		}
		fmt.Fprintf(w, "rss_max: %.1f MiB (pid %d%s)\n", float64(peak)/(1<<20), rss.pid, rss.note)
		if cpu := rss.cpu(); cpu > 0 && n > 0 {
			fmt.Fprintf(w, "cpu: %.2f s, %.0f µs per message (pid %d)\n", cpu.Seconds(), float64(cpu.Microseconds())/float64(n), rss.pid)
		}
	}
	if o.firstErr != nil {
		fmt.Fprintf(w, "first_error: %v\n", o.firstErr)
	}
}

func avgSize(corpus []*message) int {
	if len(corpus) == 0 {
		return 0
	}
	t := 0
	for _, m := range corpus {
		t += m.size
	}
	return t / len(corpus)
}

// vmRSS reads the resident set size of a process from /proc.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// cpuTime reads the user and system CPU time of a process from /proc.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// rssSampler samples a process's VmRSS every interval and keeps the peak,
// and the value when mark is called (the end of the idle phase, the start
// of the measured run); it also takes the process's CPU time between mark
// and finish.
type rssSampler struct {
	pid  int
	note string
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	peak, idle int64
	cpu0, cpu1 time.Duration
}

func startRSS(pid int, note string) (*rssSampler, error) {
	if _, err := vmRSS(pid); err != nil {
		return nil, err
	}
	r := &rssSampler{pid: pid, note: note, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			r.sample()
			select {
			case <-t.C:
			case <-r.stop:
				r.sample()
				return
			}
		}
	}()
	return r, nil
}

func (r *rssSampler) sample() int64 {
	v, err := vmRSS(r.pid)
	if err != nil {
		return 0
	}
	r.mu.Lock()
	r.peak = max(r.peak, v)
	r.mu.Unlock()
	return v
}

// mark records the current RSS as the idle figure.
func (r *rssSampler) mark() {
	v := r.sample()
	c, _ := cpuTime(r.pid)
	r.mu.Lock()
	r.idle, r.cpu0 = v, c
	r.mu.Unlock()
}

func (r *rssSampler) finish() {
	c, _ := cpuTime(r.pid)
	r.mu.Lock()
	r.cpu1 = c
	r.mu.Unlock()
	close(r.stop)
	<-r.done
}

// cpu is the CPU time the process used between mark and finish.
func (r *rssSampler) cpu() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cpu1 - r.cpu0
}

func (r *rssSampler) result() (idle, peak int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idle, r.peak
}
