// Package testmta runs a private Postfix instance as a test's own
// processes, for the end-to-end tests of the milter, the TLS policy
// server and the sidecar command.
//
// The instance has its own config_directory, queue_directory and
// data_directory in a temporary directory; its master runs in the
// foreground (master -d -s) and logs to a file there. /etc/postfix is
// only read (postfix-files), never written. Postfix's master must start
// as root, so the tests skip without root or without Postfix, except under
// CI=true, where they fail.
//
// It also holds what those tests share around the MTAs they run: an SMTP
// sink for the next hop (Sink), a client that submits one message
// (Submit), a wait for an SMTP greeting (WaitGreeting) and a buffer for
// logs written from several goroutines (SyncBuffer).
package testmta

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DaemonDir is where Debian installs Postfix's daemons (master, smtpd, ...).
const DaemonDir = "/usr/lib/postfix/sbin"

// Missing returns why Postfix cannot run here, or "" when it can: it is
// not installed, the test is not root, or there is no postfix user.
func Missing() string {
	if _, err := os.Stat(filepath.Join(DaemonDir, "master")); err != nil {
		return "Postfix is not installed (apt-get install postfix)"
	}
	if os.Geteuid() != 0 {
		return "Postfix's master must start as root"
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return "no postfix user"
	}
	return ""
}

// NeedPostfix skips the test when Postfix cannot run here (see Missing),
// saying so on stdout as "skipping the <what>: <reason>", except under
// CI=true, where it fails.
func NeedPostfix(t testing.TB, what string) {
	t.Helper()
	reason := Missing()
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", reason)
	}
	fmt.Println("skipping the "+what+":", reason)
	t.Skip(reason)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Config describes a private Postfix instance.
type Config struct {
	// Name is used in the temporary directory's name and in messages,
	// e.g. "mx.example.net". Optional.
	Name string
	// Listen holds the host:port addresses of the smtpd listeners
	// ("127.0.0.1:2525", "[::1]:2525"), each a master.cf inet service.
	// Start waits until every one of them greets.
	Listen []string
	// Main holds main.cf lines ("name = value") added to the common ones
	// (see BaseMain); a line replaces an earlier one of the same name.
	Main []string
	// Services holds extra master.cf lines (e.g. tlsmgr) added to the
	// common ones (see BaseServices).
	Services []string
	// Prefix is put before the master command, e.g.
	// {"ip", "netns", "exec", "ns1"}; it must exec master, not fork it.
	Prefix []string
	// Files are written into the config directory before master starts:
	// name (relative, such as "sasl/smtpd.conf", where Debian's Postfix
	// reads its Cyrus SASL configuration) to content.
	Files map[string]string
	// Dial connects to a listener; net.DialTimeout with 1s by default.
	// A test whose Postfix runs in another network namespace dials there.
	Dial func(network, addr string) (net.Conn, error)
}

// BaseMain returns the main.cf lines every instance gets, given its
// queue and data directories: its own directories, the postfix mail
// owner, no local delivery, no aliases, no TLS in smtpd, relaying for
// mynetworks only, and the log to master's stdout (our log file).
func BaseMain(queue, data string) []string {
	return []string{
		"compatibility_level = 3.6",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"mail_owner = postfix",
		"mydestination =",
		"smtpd_tls_security_level = none",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtpd_peername_lookup = no",
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"biff = no",
		"maillog_file = /dev/stdout", // master -s: to our log file
		"in_flow_delay = 0",
	}
}

// BaseServices is the master.cf of every instance, less its smtpd
// listeners: what a relaying Postfix needs.
var BaseServices = []string{
	"cleanup unix n - n - 0 cleanup",
	"qmgr unix n - n 300 1 qmgr",
	"rewrite unix - - n - - trivial-rewrite",
	"bounce unix - - n - 0 bounce",
	"defer unix - - n - 0 bounce",
	"trace unix - - n - 0 bounce",
	"verify unix - - n - 1 verify",
	"flush unix n - n 1000? 0 flush",
	"proxymap unix - - n - - proxymap",
	"smtp unix - - n - - smtp",
	"relay unix - - n - - smtp",
	"showq unix n - n - - showq",
	"error unix - - n - - error",
	"retry unix - - n - - error",
	"discard unix - - n - - discard",
	"anvil unix - - n - 1 anvil",
	"scache unix - - n - 1 scache",
	"postlog unix-dgram n - n - 1 postlogd",
}

// Relayhost returns the relayhost value for host:port: [host]:port, so
// that no MX lookup is made.
func Relayhost(addr string) string {
	return "[" + strings.Replace(addr, ":", "]:", 1)
}

// Postfix is a running private Postfix master.
type Postfix struct {
	Dir     string // the temporary directory: etc, queue, data, maillog
	Config  string // its config_directory
	LogPath string // its mail log
	Listen  []string
	cmd     *exec.Cmd
}

// Start writes the instance's directories and configuration, starts its
// master and waits (15s at most) until every listener greets with 220.
// When the test ends, master is stopped (SIGTERM, then SIGKILL to its
// process group after 10s) and, if the test failed, the mail log logged.
// The caller must have called NeedPostfix.
func Start(t testing.TB, c Config) *Postfix {
	t.Helper()
	// Our own directory, traversable by the postfix user (t.TempDir is 0700).
	dir, err := os.MkdirTemp("", "sidecar-postfix-"+dirName(c.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	etc, queue, data := filepath.Join(dir, "etc"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{etc, queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeQueue(t, queue, data)

	var master []string
	for _, addr := range c.Listen {
		master = append(master, addr+" inet n - n - - smtpd")
	}
	master = append(append(master, BaseServices...), c.Services...)
	mainCf := mergeMain(BaseMain(queue, data), c.Main)
	for name, lines := range map[string][]string{"main.cf": mainCf, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range c.Files {
		path := filepath.Join(etc, filepath.Clean(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	pf := &Postfix{Dir: dir, Config: etc, LogPath: filepath.Join(dir, "maillog"), Listen: c.Listen}
	logFile, err := os.Create(pf.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// -d: stay in the foreground; -s: log to stdout (there is no syslog).
	args := append(append([]string(nil), c.Prefix...), filepath.Join(DaemonDir, "master"), "-c", etc, "-d", "-s")
	pf.cmd = exec.Command(args[0], args[1:]...)
	pf.cmd.Env = append(os.Environ(), "MAIL_CONFIG="+etc)
	pf.cmd.Stdout, pf.cmd.Stderr = logFile, logFile
	pf.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := pf.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pf.stop()
		if t.Failed() {
			t.Logf("Postfix %s maillog:\n%s", c.Name, pf.tail())
		}
	})
	for _, addr := range c.Listen {
		if err := WaitGreeting(c.Dial, addr, 15*time.Second); err != nil {
			t.Fatalf("Postfix %s did not start on %s: %v\nmaillog:\n%s", c.Name, addr, err, pf.tail())
		}
	}
	return pf
}

// mergeMain adds the main.cf lines of more to base, a line replacing an
// earlier one that sets the same parameter.
func mergeMain(base, more []string) []string {
	out := append([]string(nil), base...)
	at := map[string]int{}
	for i, line := range out {
		at[paramName(line)] = i
	}
	for _, line := range more {
		name := paramName(line)
		if i, ok := at[name]; ok {
			out[i] = line
			continue
		}
		at[name] = len(out)
		out = append(out, line)
	}
	return out
}

func paramName(line string) string {
	name, _, _ := strings.Cut(line, "=")
	return strings.TrimSpace(name)
}

// dirName makes name usable in a directory name.
func dirName(name string) string {
	if name == "" {
		return ""
	}
	return strings.NewReplacer("/", "-", ":", "-").Replace(name) + "-"
}

// makeQueue creates the queue directory's subdirectories with the owners
// and modes postfix-files gives them, and hands data to postfix.
func makeQueue(t testing.TB, queue, data string) {
	t.Helper()
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	postdrop := gid
	if g, err := user.LookupGroup("postdrop"); err == nil {
		postdrop, _ = strconv.Atoi(g.Gid)
	}
	os.Chown(data, uid, gid)
	for _, q := range []struct {
		name     string
		mode     os.FileMode
		uid, gid int
	}{
		{"active", 0o700, uid, gid}, {"bounce", 0o700, uid, gid}, {"corrupt", 0o700, uid, gid},
		{"defer", 0o700, uid, gid}, {"deferred", 0o700, uid, gid}, {"flush", 0o700, uid, gid},
		{"hold", 0o700, uid, gid}, {"incoming", 0o700, uid, gid}, {"private", 0o700, uid, gid},
		{"saved", 0o700, uid, gid}, {"trace", 0o700, uid, gid},
		{"maildrop", 0o730, uid, postdrop}, {"public", 0o710, uid, postdrop}, {"pid", 0o755, 0, 0},
	} {
		p := filepath.Join(queue, q.name)
		if err := os.Mkdir(p, q.mode); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, q.uid, q.gid)
		os.Chmod(p, q.mode) // past the umask
	}
}

// stop sends master SIGTERM (it stops its children), waits up to 10s,
// then kills the process group, whatever outlived master included.
func (pf *Postfix) stop() {
	done := make(chan struct{})
	go func() { pf.cmd.Wait(); close(done) }()
	pf.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pf.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-pf.cmd.Process.Pid, syscall.SIGKILL)
}

// Log returns the mail log so far.
func (pf *Postfix) Log() string {
	b, _ := os.ReadFile(pf.LogPath)
	return string(b)
}

// tail returns the last 20 KB of the mail log.
func (pf *Postfix) tail() string {
	s := pf.Log()
	if len(s) > 20000 {
		s = s[len(s)-20000:]
	}
	return s
}

// WaitLog waits up to d for a mail log line containing s and returns it;
// the test fails if none comes.
func (pf *Postfix) WaitLog(t testing.TB, s string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, line := range strings.Split(pf.Log(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the maillog after %v:\n%s", s, d, pf.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
