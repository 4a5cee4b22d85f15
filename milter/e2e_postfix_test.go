package milter

import (
	"fmt"
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

// postfixE2E is a private Postfix like startPostfix's (postfix_test.go),
// listening on 127.0.0.1 and, when it can be bound, on [::1].
type postfixE2E struct {
	dir         string
	smtp, smtp6 string
}

func startPostfixE2E(t *testing.T, milterAddr, sinkAddr string) *postfixE2E {
	t.Helper()
	dir, err := os.MkdirTemp("", "sidecar-postfix-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	pu, _ := user.Lookup("postfix")
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	postdrop := gid
	if g, err := user.LookupGroup("postdrop"); err == nil {
		postdrop, _ = strconv.Atoi(g.Gid)
	}
	etc, queue, data := filepath.Join(dir, "etc"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{etc, queue, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(data, uid, gid)
	for _, name := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		p := filepath.Join(queue, name)
		os.Mkdir(p, 0o700)
		os.Chown(p, uid, gid)
	}
	for _, q := range []struct {
		name string
		mode os.FileMode
		gid  int
	}{{"maildrop", 0o730, postdrop}, {"public", 0o710, postdrop}} {
		p := filepath.Join(queue, q.name)
		os.Mkdir(p, q.mode)
		os.Chown(p, uid, q.gid)
		os.Chmod(p, q.mode)
	}
	os.Mkdir(filepath.Join(queue, "pid"), 0o755)

	pf := &postfixE2E{dir: dir}
	port := freePort(t)
	pf.smtp = fmt.Sprintf("127.0.0.1:%d", port)
	interfaces, protocols, networks := "127.0.0.1", "ipv4", "127.0.0.0/8"
	listeners := []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port)}
	if ipv6Loopback() {
		port6 := freePort6(t)
		pf.smtp6 = fmt.Sprintf("[::1]:%d", port6)
		interfaces, protocols, networks = "127.0.0.1, [::1]", "all", "127.0.0.0/8 [::1]/128"
		listeners = append(listeners, fmt.Sprintf("[::1]:%d inet n - n - - smtpd", port6))
	}
	mainCf := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"mail_owner = postfix",
		"myhostname = mx.example.net",
		"mydomain = example.net",
		"myorigin = example.net",
		"mydestination =",
		"inet_interfaces = " + interfaces,
		"inet_protocols = " + protocols,
		"mynetworks = " + networks,
		"relayhost = [" + strings.Replace(sinkAddr, ":", "]:", 1),
		"smtp_dns_support_level = disabled",
		"smtp_tls_security_level = none",
		"smtpd_tls_security_level = none",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtpd_recipient_restrictions = permit_mynetworks, reject",
		"smtpd_peername_lookup = no",
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"biff = no",
		"maillog_file = /dev/stdout",
		"smtpd_milters = { inet:" + milterAddr + ", default_action=tempfail }",
		"milter_default_action = tempfail",
		"milter_protocol = 6",
		"in_flow_delay = 0",
		"",
	}, "\n")
	masterCf := strings.Join(append(listeners,
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
		"",
	), "\n")
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(masterCf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "maillog")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(postfixDaemonDir, "master"), "-c", etc, "-d", "-s")
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+etc)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// master stops its children on SIGTERM; the group is killed if not.
		stopProcessGroup(cmd, func(pid int) { syscall.Kill(pid, syscall.SIGTERM) }, 10*time.Second)
		killGroup(cmd.Process.Pid) // children that outlived master
		if t.Failed() {
			t.Logf("Postfix maillog:\n%s", readTail(logPath))
		}
	})
	for _, addr := range []string{pf.smtp, pf.smtp6} {
		if addr == "" {
			continue
		}
		if err := waitGreeting(addr, 15*time.Second); err != nil {
			t.Fatalf("Postfix did not start on %s: %v\nmaillog:\n%s", addr, err, readTail(logPath))
		}
	}
	return pf
}

func TestE2EPostfix(t *testing.T) {
	needPostfix(t)
	swaks := needSwaks(t)
	m := startE2EMilter(t)
	sink := startE2ESink(t)
	pf := startPostfixE2E(t, m.addr, sink.l.Addr().String())
	runE2EScenarios(t, e2eMTA{name: "postfix", swaks: swaks, smtp: pf.smtp, smtp6: pf.smtp6}, m, sink)
}
