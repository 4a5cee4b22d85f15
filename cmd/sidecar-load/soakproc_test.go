package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemon under soak runs as its own process, built from ./cmd/sidecar;
// the test reads its log as it comes (the log is never kept whole: a long
// run writes a transaction line per message) and samples its memory.

// soakDaemon is the sidecar process.
type soakDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan logEvent // listening addresses, start, SIGHUP, reload results, stop
	done   chan struct{} // the log reader is done (the process closed stderr)

	mu           sync.Mutex
	transactions int      // "transaction" lines
	connections  int      // "connection" lines
	panics       []string // lines of a panic or a fatal runtime error
	errorLines   []string // other level=ERROR lines (the first few)
	errorCount   int
	tail         []string // the last lines, for failure messages
}

// logEvent is one log line the test waits for.
type logEvent struct {
	kind       string // listening, started, sighup, reloaded, refused, stopped
	option     string // listening: the option
	bound      string // listening: the address
	goroutines int    // sighup: the daemon's goroutine count
	line       string
}

var (
	boundRx      = regexp.MustCompile(`msg=listening option=(\S+) .*bound=(\S+)`)
	goroutinesRx = regexp.MustCompile(`goroutines=(\d+)`)
	panicRx      = regexp.MustCompile(`^(panic: |fatal error: |goroutine \d+ \[)`)
)

// buildSidecar builds ./cmd/sidecar into dir.
func buildSidecar(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sidecar")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mailsidecar/sidecar/cmd/sidecar")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func startSoakDaemon(t *testing.T, bin, conf string) *soakDaemon {
	t.Helper()
	cmd := exec.Command(bin, "-config", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &soakDaemon{t: t, cmd: cmd, events: make(chan logEvent, 10000), done: make(chan struct{})}
	go d.readLog(bufio.NewScanner(stderr))
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return d
}

func (d *soakDaemon) readLog(sc *bufio.Scanner) {
	defer close(d.done)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ev := logEvent{line: line}
		switch {
		case strings.Contains(line, "msg=transaction "):
		case strings.Contains(line, "msg=connection "):
		case strings.Contains(line, "msg=listening "):
			if m := boundRx.FindStringSubmatch(line); m != nil {
				ev.kind, ev.option, ev.bound = "listening", m[1], m[2]
			}
		case strings.Contains(line, `msg="sidecar started"`):
			ev.kind = "started"
		case strings.Contains(line, `msg="SIGHUP: reloading`):
			ev.kind = "sighup"
			if m := goroutinesRx.FindStringSubmatch(line); m != nil {
				ev.goroutines, _ = strconv.Atoi(m[1])
			}
		case strings.Contains(line, `msg="configuration reloaded"`):
			ev.kind = "reloaded"
		case strings.Contains(line, `msg="reload failed`):
			ev.kind = "refused"
		case strings.Contains(line, `msg="sidecar stopped"`):
			ev.kind = "stopped"
		}
		d.mu.Lock()
		switch {
		case strings.Contains(line, "msg=transaction "):
			d.transactions++
		case strings.Contains(line, "msg=connection "):
			d.connections++
		case panicRx.MatchString(line):
			d.panics = append(d.panics, line)
		case strings.Contains(line, "level=ERROR") && ev.kind != "refused":
			d.errorCount++
			if len(d.errorLines) < 5 {
				d.errorLines = append(d.errorLines, line)
			}
		}
		if len(d.tail) == 40 {
			d.tail = d.tail[1:]
		}
		d.tail = append(d.tail, line)
		d.mu.Unlock()
		if ev.kind != "" {
			select {
			case d.events <- ev:
			default: // the test stopped listening; never block the daemon's stderr
			}
		}
	}
}

// next waits for the next event of one of kinds (others are skipped).
func (d *soakDaemon) next(timeout time.Duration, kinds ...string) logEvent {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-d.events:
			for _, k := range kinds {
				if ev.kind == k {
					return ev
				}
			}
		case <-d.done:
			d.t.Fatalf("the daemon closed its log while the test waited for %v; last lines:\n%s", kinds, d.lastLines())
		case <-deadline:
			d.t.Fatalf("no %v log line within %v; last lines:\n%s", kinds, timeout, d.lastLines())
		}
	}
}

func (d *soakDaemon) lastLines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// reload writes text to the configuration file (a rename, so that the
// daemon never reads half a file), sends SIGHUP and waits for the
// outcome: whether the file was taken, and the goroutine count logged
// when the signal arrived.
func (d *soakDaemon) reload(conf, text string) (ok bool, goroutines int) {
	d.t.Helper()
	tmp := conf + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	ev := d.next(30*time.Second, "sighup")
	res := d.next(30*time.Second, "reloaded", "refused")
	return res.kind == "reloaded", ev.goroutines
}

// stop sends SIGTERM and returns the exit status.
func (d *soakDaemon) stop(timeout time.Duration) int {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.next(timeout, "stopped")
	<-d.done
	err := d.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return 0
}

// memSample is one reading of the daemon's /proc/PID/status.
type memSample struct {
	at      time.Duration // since the load started (negative before)
	rss     int64         // VmRSS, bytes
	threads int           // Threads: OS threads, not goroutines
}

// procStatus reads VmRSS and Threads from /proc/PID/status.
func procStatus(pid int) (rss int64, threads int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			rss = kb << 10
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		}
	}
	return rss, threads, nil
}

// memSampler reads the daemon's memory every interval until stopped.
type memSampler struct {
	mu      sync.Mutex
	samples []memSample
	stop    chan struct{}
	done    chan struct{}
}

func sampleMemory(pid int, interval time.Duration, since func() time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if rss, threads, err := procStatus(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, memSample{since(), rss, threads})
				s.mu.Unlock()
			}
			select {
			case <-tick.C:
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *memSampler) finish() []memSample {
	close(s.stop)
	<-s.done
	return s.samples
}

// maxRSS is the largest VmRSS among samples taken in [from, to).
func maxRSS(samples []memSample, from, to time.Duration) int64 {
	var m int64
	for _, s := range samples {
		if s.at >= from && s.at < to {
			m = max(m, s.rss)
		}
	}
	return m
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }
