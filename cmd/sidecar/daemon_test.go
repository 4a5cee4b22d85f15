package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the sidecar command once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the daemon process tests in -short mode: they build and run the binary")
	}
	bin := filepath.Join(t.TempDir(), "sidecar")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// daemonProc is a running sidecar process and its log lines.
type daemonProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	log   []string
}

func startDaemon(t *testing.T, bin string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, cmd: cmd, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return d
}

// waitFor reads log lines until one matches re, and returns it.
func (d *daemonProc) waitFor(re string) string {
	d.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("daemon exited before logging %q; log:\n%s", re, strings.Join(d.log, "\n"))
			}
			d.log = append(d.log, line)
			if rx.MatchString(line) {
				return line
			}
		case <-timeout:
			d.t.Fatalf("no log line matching %q within 10s; log:\n%s", re, strings.Join(d.log, "\n"))
		}
	}
}

func (d *daemonProc) boundAddr(option string) string {
	d.t.Helper()
	line := d.waitFor(`msg=listening option=` + option + ` `)
	m := regexp.MustCompile(`bound=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		d.t.Fatalf("no bound address in %q", line)
	}
	return m[1]
}

func (d *daemonProc) stop() int {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitFor(`sidecar stopped`)
	for range d.lines {
	}
	err := d.cmd.Wait()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		d.t.Fatal(err)
	}
	return 0
}

const daemonConf = `milter_listen = inet:127.0.0.1:0
policy_listen = inet:127.0.0.1:0
dns_servers = 127.0.0.1:1
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept
`

func TestDaemonReloadAndStop(t *testing.T) {
	bin := buildBinary(t)
	path := filepath.Join(t.TempDir(), "sidecar.conf")
	if err := os.WriteFile(path, []byte(daemonConf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "-config", path)
	milterAddr := d.boundAddr("milter_listen")
	policyAddr := d.boundAddr("policy_listen")
	d.waitFor(`sidecar started`)
	for _, a := range []string{milterAddr, policyAddr} {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		c.Close()
	}

	// A broken file: the reload fails, every error is logged with its
	// position, and the daemon keeps serving.
	broken := daemonConf + "  deny domian = x\n  warn message = $no_such_var\n"
	os.WriteFile(path, []byte(broken), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(`reload failed.*sidecar.conf:8:8: unknown condition or modifier \\"domian\\"`)
	d.waitFor(`reload failed.*sidecar.conf:9:18: unknown variable \$no_such_var`)
	c, err := net.DialTimeout("tcp", policyAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("policy listener gone after a failed reload: %v", err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "get example.com\n")
	if reply, err := bufio.NewReader(c).ReadString('\n'); err != nil || reply == "" {
		t.Errorf("policy answer after failed reload: %q %v", reply, err)
	}
	c.Close()

	// A good file reloads.
	os.WriteFile(path, []byte(daemonConf+"  warn logwrite = reloaded\n"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(`configuration reloaded`)

	if code := d.stop(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestDaemonDefaultConfiguration(t *testing.T) {
	for _, a := range []string{"127.0.0.1:8894", "127.0.0.1:8895"} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Skipf("the default port %s is in use on this machine: %v", a, err)
		}
		l.Close()
	}
	bin := buildBinary(t)
	d := startDaemon(t, bin)
	if got := d.boundAddr("milter_listen"); got != "127.0.0.1:8894" {
		t.Errorf("milter bound to %s", got)
	}
	if got := d.boundAddr("policy_listen"); got != "127.0.0.1:8895" {
		t.Errorf("policy bound to %s", got)
	}
	d.waitFor(`sidecar started.*config="\(embedded default\)"`)
	if code := d.stop(); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

func TestDaemonBadConfigExits(t *testing.T) {
	bin := buildBinary(t)
	path := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(path, []byte("authserv_idd = x\n"), 0o644)
	out, err := exec.Command(bin, "-config", path).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "bad.conf:1:1: unknown option \"authserv_idd\": did you mean \"authserv_id\"?") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}
