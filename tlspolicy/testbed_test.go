//go:build linux

package tlspolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// testbedTools are the programs the DNSSEC test bed needs, from the Debian
// packages knot, unbound, ldnsutils and openssl.
var testbedTools = []string{"knotd", "knotc", "unbound", "unbound-checkconf", "ldns-keygen", "ldns-signzone", "ldns-key2ds", "openssl"}

// testbed is a running Knot + validating Unbound pair on loopback.
type testbed struct {
	resolverAddr string
	run          string
}

// startTestbed builds the signed zones of testdata/dnssec-testbed and
// starts knotd and unbound as this test's own processes. It skips the test
// when a tool is missing, unless CI=true, where that is a failure.
func startTestbed(t testing.TB) *testbed {
	t.Helper()
	var missing []string
	for _, tool := range testbedTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("DNSSEC test bed: %s not installed (Debian packages: knot unbound ldnsutils openssl; make test installs them as root)", strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Println("SKIP:", msg)
		t.Skip(msg)
	}
	dir, err := filepath.Abs("testdata/dnssec-testbed")
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	ports := freePorts(t, 4)
	// The timeout class: a "server" that reads queries and never answers.
	slowUDP, err := net.ListenPacket("udp", "127.0.0.1:"+ports[3])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slowUDP.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, _, err := slowUDP.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	// The SERVFAIL class: a server that answers REFUSED to everything, so
	// that unbound gives up at once with SERVFAIL.
	deadUDP, err := net.ListenPacket("udp", "127.0.0.1:"+ports[2])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deadUDP.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := deadUDP.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				buf[2] |= 0x80           // QR
				buf[3] = buf[3]&0xf0 | 5 // RCODE REFUSED
				deadUDP.WriteTo(buf[:n], from)
			}
		}
	}()
	env := append(os.Environ(), "RUN="+run, "AUTH_ADDR=127.0.0.1", "RES_ADDR=127.0.0.1",
		"AUTH_PORT="+ports[0], "RES_PORT="+ports[1], "DEAD_PORT="+ports[2], "SLOW_PORT="+ports[3])
	setup := exec.Command("bash", filepath.Join(dir, "setup.sh"))
	setup.Env = env
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	start := func(name string, args ...string) {
		log, err := os.Create(filepath.Join(run, name+".out"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s output:\n%s", name, out)
			}
		})
	}
	start("knotd", "-c", filepath.Join(run, "knot.conf"))
	waitDNS(t, "127.0.0.1:"+ports[0])
	start("unbound", "-d", "-c", filepath.Join(run, "unbound.conf"))
	waitDNS(t, "127.0.0.1:"+ports[1])
	return &testbed{resolverAddr: "127.0.0.1:" + ports[1], run: run}
}

// freePorts returns n ports free for both UDP and TCP on 127.0.0.1.
func freePorts(t testing.TB, n int) []string {
	var ports []string
	var hold []func() error
	defer func() {
		for _, c := range hold {
			c()
		}
	}()
	for len(ports) < n {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		hold = append(hold, pc.Close, ln.Close)
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		ports = append(ports, port)
	}
	return ports
}

// waitDNS waits until a server answers for example.test SOA.
func waitDNS(t testing.TB, addr string) {
	t.Helper()
	r, err := resolver.New(resolver.Options{Servers: []string{addr}, Timeout: 200 * time.Millisecond, Attempts: 1, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Query(context.Background(), "example.test", resolver.TypeSOA)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DNS server on %s did not come up: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDNSSECTestbed(t *testing.T) {
	tb := startTestbed(t)
	res, err := resolver.New(resolver.Options{Servers: []string{tb.resolverAddr}, Timeout: 700 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dc := NewDecider(res, DeciderOptions{LookupTimeout: 5 * time.Second})
	tests := []struct {
		name    string
		nexthop string
		level   Level
		hosts   []hostWant
		errKind error // for LevelTemp, when the cause is known
	}{
		{"secure MX + usable TLSA", "example.test", LevelDANEOnly, []hostWant{{"mail.example.test", HostDANE}}, nil},
		{"insecure MX to a secure DANE host", "smart.insecure.example.test", LevelDANE, []hostWant{{"mail.example.test", HostDANE}}, nil},
		{"CNAME'd MX host", "cname.example.test", LevelDANEOnly, []hostWant{{"alias.example.test", HostDANE}}, nil},
		{"unusable-only TLSA", "unusable.example.test", LevelEncrypt, []hostWant{{"mx-unusable.example.test", HostUnusable}}, nil},
		{"proven absence of TLSA", "notlsa.example.test", LevelNone, []hostWant{{"mx-notlsa.example.test", HostNoTLSA}}, nil},
		{"TLSA in an unsigned zone", "insecure.example.test", LevelNone, []hostWant{{"mx.insecure.example.test", HostInsecure}}, nil},
		{"bogus signature", "tampered.example.test", LevelTemp, []hostWant{{"tampered.example.test", HostTemp}}, resolver.ErrServFail},
		{"one bogus host does not sink a DANE host", "partial.example.test", LevelDANEOnly,
			[]hostWant{{"tampered.example.test", HostTemp}, {"mail.example.test", HostDANE}}, nil},
		{"bogus delegation", "bogus.example.test", LevelTemp, nil, resolver.ErrServFail},
		{"SERVFAIL", "dead.example.test", LevelTemp, nil, resolver.ErrServFail},
		{"timeout", "slow.example.test", LevelTemp, nil, resolver.ErrTimeout},
		{"mixed secure/insecure MX set", "mixed.example.test", LevelDANE,
			[]hostWant{{"mail.example.test", HostDANE}, {"mx.insecure.example.test", HostInsecure}}, nil},
		{"[host]", "[mail.example.test]", LevelDANEOnly, []hostWant{{"mail.example.test", HostDANE}}, nil},
		{"[host]:port with TLSA", "[mail.example.test]:2525", LevelDANEOnly, []hostWant{{"mail.example.test", HostDANE}}, nil},
		{"[host]:port without TLSA", "[mx-notlsa.example.test]:2525", LevelNone, []hostWant{{"mx-notlsa.example.test", HostNoTLSA}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := dc.Decide(context.Background(), tt.nexthop)
			if err != nil {
				t.Fatal(err)
			}
			if d.Level != tt.level {
				t.Errorf("level %s, want %s\n%s", d.Level, tt.level, d.Explain())
			}
			if tt.hosts != nil {
				var got, want []string
				for _, h := range d.Hosts {
					got = append(got, h.Name+"="+h.Status.String())
				}
				for _, h := range tt.hosts {
					want = append(want, h.name+"="+h.status.String())
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("hosts %v, want %v\n%s", got, want, d.Explain())
				}
			}
			if tt.errKind != nil && !errors.Is(d.Err, tt.errKind) {
				t.Errorf("error %v, want %v", d.Err, tt.errKind)
			}
			t.Logf("%s -> %s: %s (%v)", tt.nexthop, d.Level, d.Reason, d.Err)
		})
	}

	// The same through the policy socket, as Postfix and Exim ask.
	env := TestEnv(res, nil)
	_, addr := startServer(t, env)
	for _, tt := range []struct{ req, want string }{
		{ns("policy example.test"), "OK dane-only"},
		{ns("policy mixed.example.test"), "OK dane"},
		{ns("policy unusable.example.test"), "OK encrypt"},
		{ns("policy notlsa.example.test"), "NOTFOUND "},
		{ns("policy bogus.example.test"), "TEMP "},
		{"get [mail.example.test]:2525\n", "200 dane-only\n"},
		{"dane tampered.example.test\n", "defer "},
		{"dane smart.insecure.example.test\n", "try "},
		{"ocsp mail.example.test\n", "none "},
	} {
		if got := exchange(t, addr, tt.req); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q: reply %q, want %q", tt.req, got, tt.want)
		}
	}
}
