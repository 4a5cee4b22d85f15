//go:build linux

package milter

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// Sendmail conflicts with Postfix as a Debian package, so the test unpacks
// Debian's sendmail-bin, sendmail-base and sendmail-cf (and m4 and libwrap0
// when the machine lacks them) with apt-get download and dpkg -x into a
// cache directory, builds a private sendmail.cf from a private .mc with
// INPUT_MAIL_FILTER, and runs sendmail -bD as the test's own process. It
// runs in its own mount and PID namespaces: /etc/hosts,
// /etc/resolv.conf and /etc/nsswitch.conf are bind-mounted over with
// private files so that no name lookup leaves the machine, /etc/mail is
// never read, and every process sendmail forks dies with the namespace at
// cleanup.

// sendmailDebs are the packages unpacked; m4 and libwrap0 are installed
// by make test but may be missing on a developer's machine.
var sendmailDebs = []string{"sendmail-bin", "sendmail-base", "sendmail-cf", "m4", "libwrap0"}

// sendmailRoot returns the directory holding the unpacked packages
// ($SIDECAR_SENDMAIL_ROOT, or the user's cache directory), unpacking them
// on first use. It skips the test when that cannot be done (fails under
// CI=true).
func sendmailRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		e2eSkip(t, "Sendmail end-to-end test: needs root (sendmail -bD binds and switches users; new namespaces need root)")
	}
	for _, tool := range []string{"mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			e2eSkip(t, "Sendmail end-to-end test: no %s", tool)
		}
	}
	root := os.Getenv("SIDECAR_SENDMAIL_ROOT")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		root = filepath.Join(cache, "sidecar-sendmail", "root")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/libexec/sendmail/sendmail")); err == nil {
		return root
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		e2eSkip(t, "Sendmail end-to-end test: sendmail is not unpacked in %s and there is no apt-get to fetch it", root)
	}
	if err := unpackSendmail(root); err != nil {
		e2eSkip(t, "Sendmail end-to-end test: cannot unpack Debian's sendmail: %v", err)
	}
	return root
}

// unpackSendmail downloads the packages and unpacks them into a fresh
// directory beside root, then renames it to root.
func unpackSendmail(root string) error {
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(root), "unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	debs := filepath.Join(work, "debs")
	os.Mkdir(debs, 0o755)
	os.Chmod(work, 0o755)
	download := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"download", "-q"}, sendmailDebs...)...)
		cmd.Dir = debs
		return cmd.CombinedOutput()
	}
	if out, err := download(); err != nil {
		// A machine whose package lists were never fetched.
		if upd, uerr := exec.Command("apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %v\n%s", uerr, upd)
		}
		if out, err = download(); err != nil {
			return fmt.Errorf("apt-get download: %v\n%s", err, out)
		}
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) < len(sendmailDebs) {
		return fmt.Errorf("apt-get download gave %d packages, want %d", len(files), len(sendmailDebs))
	}
	tmpRoot := filepath.Join(work, "root")
	for _, f := range files {
		if out, err := exec.Command("dpkg", "-x", f, tmpRoot).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg -x %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(tmpRoot, "usr/libexec/sendmail/sendmail")); err != nil {
		return err
	}
	os.RemoveAll(root)
	return os.Rename(tmpRoot, root)
}

// sendmailInstance is a running private sendmail.
type sendmailInstance struct {
	dir          string
	smtp, smtp6  string // host:port of its IPv4 and IPv6 listeners ("" when no ::1)
	cmd          *exec.Cmd
	traffic, log string
}

// ipv6Loopback reports whether ::1 can be bound.
func ipv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort6(t *testing.T) int {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sendmailMC is the private .mc: our milter with F=T (tempfail when it is
// down), daemons on loopback only, every message relayed to the sink, no
// DNS, no MSA, no ident.
const sendmailMC = `divert(-1)
divert(0)dnl
include(` + "`" + `{{ROOT}}/usr/share/sendmail/cf/m4/cf.m4')dnl
VERSIONID(` + "`" + `sidecar end-to-end test')dnl
OSTYPE(` + "`" + `linux')dnl
define(` + "`" + `confDOMAIN_NAME', ` + "`" + `mx.example.net')dnl
define(` + "`" + `QUEUE_DIR', ` + "`" + `{{DIR}}/mqueue')dnl
define(` + "`" + `MSP_QUEUE_DIR', ` + "`" + `{{DIR}}/clientmqueue')dnl
define(` + "`" + `confPID_FILE', ` + "`" + `{{DIR}}/sendmail.pid')dnl
define(` + "`" + `STATUS_FILE', ` + "`" + `{{DIR}}/statistics')dnl
define(` + "`" + `ALIAS_FILE', ` + "`" + `{{DIR}}/aliases')dnl
define(` + "`" + `confHELP_FILE', ` + "`" + `{{DIR}}/helpfile')dnl
define(` + "`" + `confSERVICE_SWITCH_FILE', ` + "`" + `{{DIR}}/service.switch')dnl
define(` + "`" + `confHOSTS_FILE', ` + "`" + `{{DIR}}/hosts')dnl
define(` + "`" + `confDONT_PROBE_INTERFACES', ` + "`" + `True')dnl
define(` + "`" + `confTO_IDENT', ` + "`" + `0')dnl
define(` + "`" + `confDELIVERY_MODE', ` + "`" + `background')dnl
define(` + "`" + `confMILTER_LOG_LEVEL', ` + "`" + `9')dnl
define(` + "`" + `SMART_HOST', ` + "`" + `relay:[127.0.0.1]')dnl
define(` + "`" + `RELAY_MAILER_ARGS', ` + "`" + `TCP $h {{SINKPORT}}')dnl
define(` + "`" + `ESMTP_MAILER_ARGS', ` + "`" + `TCP $h {{SINKPORT}}')dnl
define(` + "`" + `SMTP_MAILER_ARGS', ` + "`" + `TCP $h {{SINKPORT}}')dnl
FEATURE(` + "`" + `accept_unresolvable_domains')dnl
FEATURE(` + "`" + `no_default_msa')dnl
DAEMON_OPTIONS(` + "`" + `Port={{PORT}}, Addr=127.0.0.1, Name=MTA')dnl
{{DAEMON6}}INPUT_MAIL_FILTER(` + "`" + `sidecar', ` + "`" + `S=inet:{{MILTERPORT}}@127.0.0.1, F=T, T=C:30s;S:30s;R:60s;E:5m')dnl
MAILER(` + "`" + `smtp')dnl
`

func startSendmail(t *testing.T, root, milterAddr, sinkAddr string) *sendmailInstance {
	t.Helper()
	dir := openTempDir(t, "sidecar-sendmail-")
	for _, d := range []string{"mqueue", "clientmqueue"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	_, milterPort, _ := net.SplitHostPort(milterAddr)
	_, sinkPort, _ := net.SplitHostPort(sinkAddr)
	sm := &sendmailInstance{dir: dir, traffic: filepath.Join(dir, "traffic"), log: filepath.Join(dir, "output")}
	port := testmta.FreePort(t)
	sm.smtp = fmt.Sprintf("127.0.0.1:%d", port)
	daemon6 := ""
	if ipv6Loopback() {
		port6 := freePort6(t)
		sm.smtp6 = fmt.Sprintf("[::1]:%d", port6)
		daemon6 = fmt.Sprintf("DAEMON_OPTIONS(`Port=%d, Addr=::1, Name=MTA6, Family=inet6')dnl\n", port6)
	}
	mc := strings.NewReplacer("{{ROOT}}", root, "{{DIR}}", dir, "{{SINKPORT}}", sinkPort, "{{PORT}}", strconv.Itoa(port),
		"{{DAEMON6}}", daemon6, "{{MILTERPORT}}", milterPort).Replace(sendmailMC)
	hostname, _ := os.Hostname()
	files := map[string]string{
		"sendmail.mc":    mc,
		"service.switch": "hosts files\naliases files\n",
		"hosts":          "127.0.0.1 localhost mx.example.net\n::1 localhost ip6-localhost\n",
		"aliases":        "",
		"helpfile":       "",
		// Bind-mounted over the system's files inside the namespace.
		"etc-hosts":     "127.0.0.1 localhost mx.example.net " + hostname + "\n::1 localhost ip6-localhost\n",
		"resolv.conf":   "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nservices: files\nprotocols: files\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m4 := filepath.Join(root, "usr/bin/m4")
	if p, err := exec.LookPath("m4"); err == nil {
		m4 = p
	}
	cf, err := exec.Command(m4, filepath.Join(dir, "sendmail.mc")).Output()
	if err != nil {
		t.Fatalf("m4 sendmail.mc: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sendmail.cf"), cf, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "usr/libexec/sendmail/sendmail")
	script := strings.Join([]string{
		"set -e",
		// Our mounts must not propagate to the machine's namespace.
		"mount --make-rprivate /",
		"mount --bind " + dir + "/etc-hosts /etc/hosts",
		"mount --bind " + dir + "/resolv.conf /etc/resolv.conf",
		"mount --bind " + dir + "/nsswitch.conf /etc/nsswitch.conf",
		// -bD: daemon in the foreground; -X: SMTP traffic log.
		"exec " + bin + " -C" + dir + "/sendmail.cf -bD -X " + sm.traffic,
	}, "\n")
	out, err := os.Create(sm.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// New mount and PID namespaces: sendmail is the namespace's first
	// process (pid 1), our child; when it exits every process it forked
	// is killed with the namespace.
	sm.cmd = exec.Command("sh", "-c", script)
	sm.cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "lib/x86_64-linux-gnu")+":"+filepath.Join(root, "usr/lib/x86_64-linux-gnu"))
	sm.cmd.Stdout, sm.cmd.Stderr = out, out
	sm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID}
	if err := sm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		stopProcessGroup(sm.cmd, func(pid int) { syscall.Kill(pid, syscall.SIGTERM) }, 10*time.Second)
		t.Logf("Sendmail stopped in %v", time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			t.Logf("Sendmail output:\n%s\nSMTP traffic:\n%s", readTail(sm.log), readTail(sm.traffic))
		}
	})
	for _, addr := range []string{sm.smtp, sm.smtp6} {
		if addr == "" {
			continue
		}
		if err := testmta.WaitGreeting(nil, addr, 15*time.Second); err != nil {
			t.Fatalf("Sendmail did not start on %s: %v\noutput:\n%s", addr, err, readTail(sm.log))
		}
	}
	return sm
}

// readTail returns the last 20 KB of a file.
func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	return string(b)
}

func TestE2ESendmail(t *testing.T) {
	swaks := needSwaks(t)
	root := sendmailRoot(t)
	m := startE2EMilter(t)
	sink := startE2ESink(t)
	sm := startSendmail(t, root, m.addr, sink.l.Addr().String())
	runE2EScenarios(t, e2eMTA{name: "sendmail", swaks: swaks, smtp: sm.smtp, smtp6: sm.smtp6, sendmail: true}, m, sink)
}

// TestSendmailBounce is the proof with real Sendmail: a private Sendmail
// relays a message to a next hop that refuses it (550 5.1.1) and bounces
// it; dsninfo reads Sendmail's DSN format. Sendmail passes the RFC 3461
// parameters of MAIL and RCPT to the milter (the original's transaction
// line), and its milter sees a bounce arriving from another host: the
// bounce handed back to it with the null sender gets a msg=bounce line.
func TestSendmailBounce(t *testing.T) {
	root := sendmailRoot(t)
	h := dsnHarness(t)
	sinkAddr, msgs := refusingSink(t)
	sm := startSendmail(t, root, h.addr, sinkAddr)

	sendWithDSNParams(t, sm.smtp, "MAIL FROM:<alice@example.com> RET=HDRS ENVID=SM+2B3",
		[]string{"RCPT TO:<gone@example.org> NOTIFY=FAILURE ORCPT=rfc822;gone+40example.org"}, "will bounce at Sendmail", "orig-sm-1@example.com")

	var m string
	select {
	case m = <-msgs:
	case <-time.After(60 * time.Second):
		t.Fatalf("no bounce at the sink after 60s; log:\n%s", h.logs.String())
	}
	r, rc := readRealBounce(t, m, "sendmail-failed.eml")
	for _, c := range []fieldCheck{
		{"Reporting-MTA", r.ReportingMTA.Value, "mx.example.net"},
		{"Received-From-MTA", r.ReceivedFromMTA.String(), "DNS; localhost"},
		// Sendmail, like Postfix, writes ENVID decoded from xtext.
		{"Original-Envelope-Id", r.OriginalEnvelopeID, "SM+3"},
		{"Final-Recipient", rc.FinalRecipient.String(), "RFC822; gone@example.org"},
		{"Original-Recipient", rc.OriginalRecipient.Value, "gone@example.org"},
		{"Action", string(rc.Action), "failed"},
		{"Status", rc.Status.String(), "5.1.1"},
		{"Remote-MTA", rc.RemoteMTA.Value, "[127.0.0.1]"},
		{"Diagnostic-Code", rc.DiagnosticCode.String(), "SMTP; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"},
		{"original Message-ID", r.Original.MessageID, "orig-sm-1@example.com"},
		{"original Subject", r.Original.Subject, "will bounce at Sendmail"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if rc.LastAttemptDate == "" || r.ArrivalDate == "" {
		t.Errorf("no Last-Attempt-Date or Arrival-Date: %+v", r)
	}

	// The original's transaction line: the RFC 3461 parameters Sendmail
	// passed to the milter.
	var orig map[string]any
	for _, tx := range h.logs.records("transaction") {
		if tx["sender"] == "alice@example.com" {
			orig = tx
		}
	}
	if d, _ := orig["dsn"].(map[string]any); d["ret"] != "HDRS" || d["envid"] != "SM+3" ||
		fmt.Sprint(d["notify"]) != "[gone@example.org FAILURE]" || fmt.Sprint(d["orcpt"]) != "[gone@example.org rfc822;gone@example.org]" {
		t.Errorf("original's transaction line: dsn = %v", orig["dsn"])
	}

	// The bounce arriving from another host, through Sendmail's milter.
	b := submitBounce(t, h, sm.smtp, m, "gone@example.org")
	for k, v := range map[string]any{"kind": "dsn", "action": "failed", "status": "5.1.1", "remote_mta": "[127.0.0.1]",
		"original_message_id": "orig-sm-1@example.com", "original_envid": "SM+3", "reporting_mta": "mx.example.net",
		"diagnostic": "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"} {
		if b[k] != v {
			t.Errorf("bounce line: %s = %v, want %v", k, b[k], v)
		}
	}
}
