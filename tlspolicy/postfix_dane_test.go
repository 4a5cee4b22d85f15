//go:build linux

package tlspolicy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestPostfixDANE is the real delivery test of issue 7: Debian's Postfix,
// as the SMTP client, asks the policy server (this process) through
// smtp_tls_policy_maps = socketmap:inet:127.0.0.1:PORT:policy, does its
// own DANE verification against the DNSSEC test bed (knot + validating
// unbound), and delivers to a small STARTTLS server of this test whose
// certificate matches the TLSA record (sent, "Verified TLS connection
// established") or not (deferred).
//
// Postfix reads the system resolver, so everything runs in a network
// namespace the test creates: /etc/netns/NAME/resolv.conf points at the
// unbound inside it (on 127.0.0.1:53 of the namespace); the machine's own
// resolver is never touched. knotd, unbound and Postfix run under
// "ip netns exec"; the listeners of this process (policy server, TLS
// SMTP server) are created inside the namespace from a thread that joined
// it; the policy server's resolver reaches the namespace's unbound through
// a small relay on the host's loopback.
//
// Main-cf smtp_tls_security_level is "none": only the policy map's answer
// can make Postfix use TLS and DANE at all.

func TestPostfixDANE(t *testing.T) {
	started := time.Now()
	pfDaneNeeds(t)
	bed := startNetnsBed(t, "pfdane")
	nsName, nsfd, run := bed.name, bed.nsfd, bed.run
	t.Logf("namespace %s, knot and unbound up after %v", nsName, time.Since(started).Round(time.Millisecond))

	// The policy server: this process, listening inside the namespace, its
	// resolver reaching unbound through a relay on the host's loopback.
	res, err := resolver.New(resolver.Options{Servers: []string{bed.relay}, Timeout: 2 * time.Second, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	var policyLog testmta.SyncBuffer
	env := TestEnv(res, nil)
	env.Logger = slog.New(slog.NewTextHandler(&policyLog, nil))
	policyLn := servePolicyInNetns(t, nsfd, env)

	// The destination: mail.example.test = 127.0.0.25 in the test bed zone,
	// TLSA 3 1 1 of the key setup.sh generated in $RUN/tls.
	good, err := tls.LoadX509KeyPair(filepath.Join(run, "tls/cert.pem"), filepath.Join(run, "tls/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bad := pfDaneCert(t, "mail.example.test")
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(&good)
	mx := tlsSinkInNetns(t, nsfd, "127.0.0.25:25", "mail.example.test", &cert)

	pf := pfDaneStartPostfix(t, nsName, nsfd, policyLn.Addr().String())
	t.Logf("Postfix up after %v", time.Since(started).Round(time.Millisecond))

	// 1. The certificate matches the TLSA record: delivered, verified.
	phase := time.Now()
	pf.submit(t, nsfd, "match")
	select {
	case m := <-mx.Msgs:
		if overTLS := mx.TLSMessages() == 1; !overTLS || !strings.Contains(m, "Subject: match") {
			t.Errorf("delivered message: tls=%v\n%s", overTLS, m)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no message delivered with the matching certificate\npolicy log:\n%s\nmaillog:\n%s", policyLog.String(), pf.Log())
	}
	pf.WaitLog(t, "status=sent", 10*time.Second)
	log := pf.Log()
	if !strings.Contains(log, "Verified TLS connection established to mail.example.test[127.0.0.25]:25") {
		t.Errorf("no \"Verified TLS connection established\" in the maillog:\n%s", log)
	}
	if !strings.Contains(policyLog.String(), "nexthop=example.test policy=dane-only") {
		t.Errorf("the policy server did not answer dane-only for example.test:\n%s", policyLog.String())
	}
	t.Logf("matching certificate: delivered and verified in %v", time.Since(phase).Round(time.Millisecond))

	// 2. The certificate does not match: Postfix defers, nothing delivered.
	phase = time.Now()
	cert.Store(&bad)
	pf.submit(t, nsfd, "mismatch")
	line := pf.WaitLog(t, "status=deferred", 20*time.Second)
	if !strings.Contains(line, "certificate not verified") {
		t.Errorf("deferral reason: %s", line)
	}
	select {
	case m := <-mx.Msgs:
		t.Errorf("message delivered despite a certificate that does not match the TLSA record:\n%s", m)
	default:
	}
	if n := mx.Handshakes(); n < 2 {
		t.Errorf("%d TLS handshakes, want 2 (the mismatch must be found in TLS, not before)", n)
	}
	t.Logf("mismatching certificate: deferred in %v (%s)", time.Since(phase).Round(time.Millisecond), strings.TrimSpace(line))
	for _, l := range strings.Split(pf.Log(), "\n") {
		if strings.Contains(l, "postfix/smtp[") {
			t.Log(l)
		}
	}
	t.Logf("total %v", time.Since(started).Round(time.Millisecond))
}

// pfDaneNeeds skips (or fails under CI=true) when the test cannot run.
func pfDaneNeeds(t *testing.T) {
	t.Helper()
	skip := func(msg string) {
		t.Helper()
		fmt.Println("SKIP TestPostfixDANE:", msg)
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		skip("needs root (network namespaces, Postfix's master)")
	}
	var missing []string
	for _, tool := range append([]string{"ip"}, testbedTools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat(filepath.Join(testmta.DaemonDir, "master")); err != nil {
		missing = append(missing, "postfix")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		missing = append(missing, "postfix user")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not installed (Debian packages: iproute2 postfix knot unbound ldnsutils openssl)", strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: " + msg)
		}
		skip(msg)
	}
	probe := exec.Command("sh", "-c", "ip netns add sidecar-probe-$$ && ip netns del sidecar-probe-$$")
	if out, err := probe.CombinedOutput(); err != nil {
		skip(fmt.Sprintf("network namespaces cannot be created here: %v: %s", err, bytes.TrimSpace(out)))
	}
}

// pfDaneNetns creates the namespace with lo up and its own resolv.conf,
// and removes it (killing whatever still runs in it) when the test ends.
// It returns a descriptor of the namespace for setns.
func pfDaneNetns(t *testing.T, name string) int {
	t.Helper()
	ipc := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	etc := filepath.Join("/etc/netns", name)
	cleanup := func() {
		// Whatever still runs in the namespace is ours (Postfix's children
		// outlive their master for a moment): kill it and wait for it.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			out, err := exec.Command("ip", "netns", "pids", name).Output()
			var pids []string
			for _, f := range strings.Fields(string(out)) {
				// Neither this process (it created sockets in the namespace)
				// nor zombies (reaped by init, their master gone) count.
				if f == strconv.Itoa(os.Getpid()) {
					continue
				}
				if st, err := os.ReadFile("/proc/" + f + "/stat"); err == nil && !bytes.Contains(st, []byte(") Z ")) {
					pids = append(pids, f)
				}
			}
			if err != nil || len(pids) == 0 {
				break
			}
			for _, f := range pids {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		ipc("netns", "del", name)
		os.RemoveAll(etc)
		os.Remove("/etc/netns") // only when empty
	}
	cleanup() // a namespace left by a killed run of the same pid
	if err := ipc("netns", "add", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	if err := ipc("-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	// trust-ad: glibc passes the AD bit on to Postfix only with it.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions trust-ad attempts:2 timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("/var/run/netns", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// pfDaneInNetns runs f on an OS thread that joined the namespace; sockets
// f creates belong to the namespace for their whole life. The thread is
// never handed back to the scheduler: it ends with its goroutine.
func pfDaneInNetns(t *testing.T, nsfd int, f func() error) {
	t.Helper()
	if err := pfDaneInNetnsErr(nsfd, f); err != nil {
		t.Fatal(err)
	}
}

func pfDaneInNetnsErr(nsfd int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no unlock: the thread exits with the goroutine
		if _, _, e := syscall.RawSyscall(sysSetns(), uintptr(nsfd), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns: %v", e)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// sysSetns is the number of setns(2), which package syscall does not name.
func sysSetns() uintptr {
	switch runtime.GOARCH {
	case "arm64", "riscv64", "loong64":
		return 268
	case "386":
		return 346
	case "arm":
		return 375
	}
	return 308 // amd64
}

func pfDaneDial(nsfd int, network, addr string) (c net.Conn, err error) {
	err = pfDaneInNetnsErr(nsfd, func() (err error) {
		c, err = net.DialTimeout(network, addr, 3*time.Second)
		return err
	})
	return c, err
}

// pfDaneStart starts a daemon in the namespace as the test's own process.
func pfDaneStart(t *testing.T, run, nsName, logName string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(run, logName+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", nsName}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it follows the forking thread, and threads that joined
	// the namespace end. The namespace cleanup kills what is left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("%s output:\n%s", logName, out)
		}
	})
	return cmd
}

// pfDaneWaitDNS waits until the server at addr in the namespace answers
// example.test SOA (with AD set when validating).
func pfDaneWaitDNS(t *testing.T, nsfd int, addr string, validating bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		c, err := pfDaneDial(nsfd, "udp", addr)
		if err == nil {
			m := new(dns.Msg)
			m.SetQuestion("example.test.", dns.TypeSOA)
			m.SetEdns0(1232, true)
			m.RecursionDesired = validating
			dc := &dns.Conn{Conn: c}
			c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if err = dc.WriteMsg(m); err == nil {
				var r *dns.Msg
				if r, err = dc.ReadMsg(); err == nil {
					if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 && (!validating || r.AuthenticatedData) {
						c.Close()
						return
					}
					last = fmt.Sprintf("rcode %s, AD %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
				}
			}
			c.Close()
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("DNS server %s in the namespace did not come up: %s", addr, last)
}

// pfDaneRelay forwards DNS over UDP and TCP from a loopback port of the
// host to target inside the namespace, and returns the host address.
func pfDaneRelay(t *testing.T, nsfd int, target string) string {
	t.Helper()
	port := freePorts(t, 1)[0]
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		for {
			buf := make([]byte, 65535)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			go func() {
				c, err := pfDaneDial(nsfd, "udp", target)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
				reply := make([]byte, 65535)
				m, err := c.Read(reply)
				if err != nil {
					return
				}
				pc.WriteTo(reply[:m], from)
			}()
		}
	}()
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer a.Close()
				b, err := pfDaneDial(nsfd, "tcp", target)
				if err != nil {
					return
				}
				defer b.Close()
				a.SetDeadline(time.Now().Add(10 * time.Second))
				b.SetDeadline(time.Now().Add(10 * time.Second))
				go io.Copy(b, a)
				io.Copy(a, b)
			}()
		}
	}()
	return "127.0.0.1:" + port
}

// pfDaneCert makes a self-signed certificate with a fresh key.
func pfDaneCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pfDanePostfix is a private Postfix instance in the namespace.
type pfDanePostfix struct {
	*testmta.Postfix
	smtpd string
}

// submit hands a message for rcpt@example.test to Postfix's smtpd.
func (pf *pfDanePostfix) submit(t *testing.T, nsfd int, subject string) {
	t.Helper()
	pf.submitTo(t, nsfd, "rcpt@example.test", subject)
}

// submitTo hands a message for rcpt to Postfix's smtpd.
func (pf *pfDanePostfix) submitTo(t *testing.T, nsfd int, rcpt, subject string) {
	t.Helper()
	err := testmta.Submit(pf.smtpd, testmta.Submission{
		Helo: "submitter.example.net",
		From: "sender@example.net",
		To:   []string{rcpt},
		Data: []byte("From: <sender@example.net>\r\nTo: <" + rcpt + ">\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"),
		Dial: func(network, addr string) (net.Conn, error) { return pfDaneDial(nsfd, network, addr) },
	})
	if err != nil {
		t.Fatal(err)
	}
}

func pfDaneStartPostfix(t *testing.T, nsName string, nsfd int, policyAddr string, extraMain ...string) *pfDanePostfix {
	t.Helper()
	const smtpdAddr = "127.0.0.1:2525"
	pf := testmta.Start(t, testmta.Config{
		Name:   "dane",
		Listen: []string{smtpdAddr},
		Main: append([]string{
			"myhostname = client.example.net",
			"mydomain = example.net",
			"myorigin = example.net",
			"inet_interfaces = 127.0.0.1",
			"inet_protocols = ipv4",
			"mynetworks = 127.0.0.0/8",
			"relayhost =",
			"smtp_host_lookup = dns",
			"smtp_dns_support_level = dnssec",
			"dnssec_probe = ns:example.test",
			// Only the policy map can turn TLS (and DANE) on.
			"smtp_tls_security_level = none",
			"smtp_tls_policy_maps = socketmap:inet:" + policyAddr + ":policy",
			"smtp_tls_loglevel = 1",
			"smtp_tls_session_cache_database =",
			"smtp_connection_cache_on_demand = no",
			"smtpd_recipient_restrictions = permit_mynetworks, reject",
			"minimal_backoff_time = 300s",
		}, extraMain...),
		Services: []string{"tlsmgr unix - - n 1000? 1 tlsmgr"},
		// Postfix runs in the namespace; ip netns exec execs master.
		Prefix: []string{"ip", "netns", "exec", nsName},
		Dial:   func(network, addr string) (net.Conn, error) { return pfDaneDial(nsfd, network, addr) },
	})
	return &pfDanePostfix{Postfix: pf, smtpd: smtpdAddr}
}

// netnsBed is the DNSSEC test bed inside a network namespace of its own:
// unbound on 127.0.0.1:53 there (the namespace's resolv.conf), knot on
// 127.0.0.1:5301, and a relay to unbound on the host's loopback for this
// process's resolver.
type netnsBed struct {
	name  string // the namespace
	nsfd  int
	run   string // the rendered test bed: zones, configurations, tls/
	relay string // host:port on the host's loopback, forwarding to unbound
}

// startNetnsBed creates the namespace sidecar-LABEL-PID and starts knot
// and unbound in it as the test's own processes.
func startNetnsBed(t *testing.T, label string) *netnsBed {
	t.Helper()
	b := &netnsBed{name: fmt.Sprintf("sidecar-%s-%d", label, os.Getpid())}
	b.nsfd = pfDaneNetns(t, b.name)

	// The DNSSEC test bed, rendered by its own setup.sh, inside the namespace:
	// unbound on 127.0.0.1:53 (resolv.conf has no port), knot on 5301.
	tbdir, err := filepath.Abs("testdata/dnssec-testbed")
	if err != nil {
		t.Fatal(err)
	}
	b.run = t.TempDir()
	setup := exec.Command("bash", filepath.Join(tbdir, "setup.sh"))
	setup.Env = append(os.Environ(), "RUN="+b.run, "AUTH_ADDR=127.0.0.1", "RES_ADDR=127.0.0.1",
		"AUTH_PORT=5301", "RES_PORT=53", "DEAD_PORT=5303", "SLOW_PORT=5304")
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	pfDaneStart(t, b.run, b.name, "knotd", "knotd", "-c", filepath.Join(b.run, "knot.conf"))
	pfDaneWaitDNS(t, b.nsfd, "127.0.0.1:5301", false)
	pfDaneStart(t, b.run, b.name, "unbound", "unbound", "-d", "-c", filepath.Join(b.run, "unbound.conf"))
	pfDaneWaitDNS(t, b.nsfd, "127.0.0.1:53", true)
	b.relay = pfDaneRelay(t, b.nsfd, "127.0.0.1:53")
	return b
}

// servePolicyInNetns serves env's policy socket on a port of 127.0.0.1
// inside the namespace until the test ends.
func servePolicyInNetns(t *testing.T, nsfd int, env *Env) net.Listener {
	t.Helper()
	srv := NewServer(func() *Env { return env })
	var ln net.Listener
	pfDaneInNetns(t, nsfd, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln
}

// tlsSinkInNetns serves an SMTP sink with STARTTLS on addr inside the
// namespace, presenting the certificate cert holds at each handshake.
func tlsSinkInNetns(t *testing.T, nsfd int, addr, name string, cert *atomic.Pointer[tls.Certificate]) *testmta.Sink {
	t.Helper()
	var ln net.Listener
	pfDaneInNetns(t, nsfd, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return testmta.ServeSink(t, ln, testmta.SinkOptions{
		Name:    name,
		Timeout: 30 * time.Second,
		TLS: &tls.Config{
			GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil },
			SessionTicketsDisabled: true,
		},
	})
}
