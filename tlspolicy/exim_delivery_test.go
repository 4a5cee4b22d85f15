//go:build linux

package tlspolicy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mailsidecar/sidecar/internal/testkit/testexim"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// TestEximDelivery is the real delivery test of the README's Exim
// configuration (issue 16): Debian's Exim 4.96, unpacked privately, runs
// in the namespace test bed with the README's main-section lines, routers
// and smtp transport as they stand in README.md, its resolver the bed's
// validating unbound (the namespace's resolv.conf, dns_dnssec_ok = 1),
// its policy socket this process. Each case is one "exim -odi" delivery
// to a TLS sink of the test; the main log and the sink tell what happened:
//
//   - example.test (DANE-EE): delivered with CV=dane when the certificate
//     matches the TLSA record, deferred when it does not;
//   - tampered, bogus, dead (DNS failures), or the policy socket
//     unreachable: deferred by the first router;
//   - sts.example.test (MTA-STS enforce): delivered to the matching MX
//     with a certificate of the bed's CA for its name, deferred with one
//     for another name; stsnomatch.example.test, whose policy matches no
//     MX host, deferred by the routers, never bounced;
//   - OCSP: with hosts_require_ocsp (sidecar's option) for the MX host,
//     delivered when the sink staples a good response signed by the CA,
//     deferred when it staples none or a revoked one; without it, no
//     staple is delivered.
//
// The one line the test adds to the README's transport is
// tls_verify_certificates, naming the bed's CA instead of the system's.
func TestEximDelivery(t *testing.T) {
	started := time.Now()
	bin := testexim.Binary(t)
	eximBedNeeds(t)
	b := startSTSNetnsBed(t, "exim")
	t.Logf("namespace %s, knot, unbound and the policy server up after %v", b.name, time.Since(started).Round(time.Millisecond))

	var policyLog, ocspLog testmta.SyncBuffer
	policy := servePolicyInNetns(t, b.nsfd, b.stsEnvRules(t, &policyLog, nil))
	ocspRules := &Rules{RequireOCSP: MustList("mx-notlsa.example.test", true), RequestOCSP: MustList("*", true), RequestOCSPDefault: true}
	ocspPolicy := servePolicyInNetns(t, b.nsfd, b.stsEnvRules(t, &ocspLog, ocspRules))

	// mail.example.test (127.0.0.25): TLSA 3 1 1 of setup.sh's key.
	daneGood, err := tls.LoadX509KeyPair(filepath.Join(b.run, "tls/cert.pem"), filepath.Join(b.run, "tls/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	daneBad := pfDaneCert(t, "mail.example.test")
	var daneCert atomic.Pointer[tls.Certificate]
	daneMX := tlsSinkInNetns(t, b.nsfd, "127.0.0.25:25", "mail.example.test", &daneCert)
	// mx-notlsa.example.test (127.0.0.29): the MX of the MTA-STS domains.
	stsGood := b.ca.Leaf(t, "mx-notlsa.example.test")
	stsOther := b.ca.Leaf(t, "other.example.test")
	leaf, err := x509.ParseCertificate(stsGood.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	stapled := func(status int) *tls.Certificate {
		c := stsGood
		c.OCSPStaple = b.ca.OCSPResponse(t, leaf, status)
		return &c
	}
	var stsCert atomic.Pointer[tls.Certificate]
	stsMX := tlsSinkInNetns(t, b.nsfd, "127.0.0.29:25", "mx-notlsa.example.test", &stsCert)

	ex := newEximNetns(t, bin, b.name, b.caFile)
	tests := []struct {
		name   string
		rcpt   string
		policy string // the policy server's address
		sink   *testmta.Sink
		cert   *atomic.Pointer[tls.Certificate]
		serve  *tls.Certificate
		want   string // in the main log: "=> RCPT" delivered, "== RCPT" deferred
		reason string // in the same line
	}{
		{"DANE match", "rcpt@example.test", policy.Addr().String(), daneMX, &daneCert, &daneGood,
			"=> rcpt@example.test R=dnslookup T=remote_smtp H=mail.example.test [127.0.0.25]", "CV=dane"},
		{"DANE mismatch", "rcpt@example.test", policy.Addr().String(), daneMX, &daneCert, &daneBad,
			"== rcpt@example.test R=dnslookup T=remote_smtp defer", "The certificate differs"},
		{"sidecar unreachable", "rcpt@example.test", "127.0.0.1:1", daneMX, &daneCert, &daneGood,
			"== rcpt@example.test R=sidecar_dane_defer defer", "DANE policy lookup failed: defer sidecar unreachable"},
		{"MX RRSIG tampered", "rcpt@tampered.example.test", policy.Addr().String(), nil, nil, nil,
			"== rcpt@tampered.example.test R=sidecar_dane_defer defer (-1): DANE policy lookup failed: defer", "deferring, never downgrading"},
		{"bogus delegation", "rcpt@bogus.example.test", policy.Addr().String(), nil, nil, nil,
			"== rcpt@bogus.example.test R=sidecar_dane_defer defer (-1): DANE policy lookup failed: defer", "deferring, never downgrading"},
		{"dead zone", "rcpt@dead.example.test", policy.Addr().String(), nil, nil, nil,
			"== rcpt@dead.example.test R=sidecar_dane_defer defer (-1): DANE policy lookup failed: defer", "deferring, never downgrading"},
		{"STS match", "rcpt@sts.example.test", policy.Addr().String(), stsMX, &stsCert, &stsGood,
			"=> rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp H=mx-notlsa.example.test [127.0.0.29]", "CV=yes"},
		{"STS certificate for another name", "rcpt@sts.example.test", policy.Addr().String(), stsMX, &stsCert, &stsOther,
			"== rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp defer", "(certificate verification failed)"},
		{"STS no MX matches", "rcpt@stsnomatch.example.test", policy.Addr().String(), stsMX, &stsCert, &stsGood,
			"== rcpt@stsnomatch.example.test R=sidecar_sts_defer defer", "MTA-STS policy: no MX host matches"},
		{"OCSP not required, none stapled", "rcpt@sts.example.test", policy.Addr().String(), stsMX, &stsCert, &stsGood,
			"=> rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp H=mx-notlsa.example.test [127.0.0.29]", "CV=yes"},
		{"OCSP required, good", "rcpt@sts.example.test", ocspPolicy.Addr().String(), stsMX, &stsCert, stapled(ocsp.Good),
			"=> rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp H=mx-notlsa.example.test [127.0.0.29]", "CV=yes"},
		{"OCSP required, none stapled", "rcpt@sts.example.test", ocspPolicy.Addr().String(), stsMX, &stsCert, &stsGood,
			"== rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp defer", "(certificate status check failed)"},
		{"OCSP required, revoked", "rcpt@sts.example.test", ocspPolicy.Addr().String(), stsMX, &stsCert, stapled(ocsp.Revoked),
			"== rcpt@sts.example.test R=sidecar_sts_mx T=remote_smtp defer", "certificate revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phase := time.Now()
			if tt.cert != nil {
				tt.cert.Store(tt.serve)
			}
			var handshakes int
			if tt.sink != nil {
				handshakes = tt.sink.Handshakes()
			}
			log := ex.deliver(t, tt.policy, tt.rcpt, tt.name)
			if line := lineWith(log, tt.want); line == "" || !strings.Contains(line, tt.reason) {
				t.Errorf("main log lacks %q with %q:\n%s\npolicy log:\n%s%s", tt.want, tt.reason, log, policyLog.String(), ocspLog.String())
			}
			if strings.Contains(log, " ** ") {
				t.Errorf("bounced:\n%s", log)
			}
			delivered := strings.HasPrefix(tt.want, "=>")
			if tt.sink != nil {
				select {
				case m := <-tt.sink.Msgs:
					if !delivered {
						t.Errorf("delivered although the main log should say %q:\n%s", tt.want, m)
					} else if !strings.Contains(m, "Subject: "+tt.name) {
						t.Errorf("the sink got another message:\n%s", m)
					}
				case <-time.After(200 * time.Millisecond):
					if delivered {
						t.Errorf("the sink got no message")
					}
				}
			}
			t.Logf("%v: %s", time.Since(phase).Round(time.Millisecond), lineWith(log, tt.want[:3]+tt.rcpt))
			// A mismatch must be found in TLS, not before it.
			if tt.sink != nil && !delivered && strings.Contains(tt.want, "T=remote_smtp") && tt.sink.Handshakes() == handshakes {
				t.Errorf("deferred without a TLS handshake")
			}
		})
	}
	// The OCSP requirement came from the second policy server's answer.
	if l := ocspLog.String(); !strings.Contains(l, "nexthop=[mx-notlsa.example.test] policy=none ocsp=require") {
		t.Errorf("the OCSP policy server did not answer require for mx-notlsa.example.test:\n%s", l)
	}
	eximTLSReport(t, ex.log(), policyLog.String()+ocspLog.String())
	if t.Failed() {
		panic, _ := os.ReadFile(filepath.Join(ex.dir, "log/paniclog"))
		t.Logf("exim main log:\n%s\npanic log:\n%s", ex.log(), panic)
	}
	t.Logf("total %v", time.Since(started).Round(time.Millisecond))
}

// eximBedNeeds skips (or fails under CI=true) when the namespace bed
// cannot run; testexim.Binary has checked for root and Exim.
func eximBedNeeds(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range append([]string{"ip"}, testbedTools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	msg := ""
	if len(missing) > 0 {
		msg = strings.Join(missing, ", ") + " not installed (Debian packages: iproute2 knot unbound ldnsutils openssl)"
	} else if out, err := exec.Command("sh", "-c", "ip netns add sidecar-probe-$$ && ip netns del sidecar-probe-$$").CombinedOutput(); err != nil {
		msg = fmt.Sprintf("network namespaces cannot be created here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if msg == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: " + msg)
	}
	fmt.Println("SKIP:", msg)
	t.Skip(msg)
}

// eximNetns is a private Exim whose configuration is the README's, run
// in the bed's namespace.
type eximNetns struct {
	bin, dir, ns string
	template     string // exim.conf with @POLICY@ for the policy socket
	logOffset    int
}

// eximTestUID is the Debian-exim user of the private passwd file.
const eximTestUID = 64321

func newEximNetns(t *testing.T, bin, ns, caFile string) *eximNetns {
	t.Helper()
	e := &eximNetns{bin: bin, dir: t.TempDir(), ns: ns}
	// Exim gives up root's privileges before it writes its log: the
	// directories must be open to its user.
	os.Chmod(filepath.Dir(e.dir), 0o755)
	os.Chmod(e.dir, 0o755)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	conf, ok := readmeEximConf(string(readme))
	if !ok {
		t.Fatal("README.md: no Exim configuration block after **Exim**")
	}
	if !strings.Contains(conf, "inet:127.0.0.1:8895") {
		t.Fatal("README's Exim configuration does not name inet:127.0.0.1:8895")
	}
	e.template = fmt.Sprintf(`primary_hostname = client.example.net
qualify_domain = example.net
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
domainlist local_domains = @
disable_ipv6 = true
`, e.dir) + strings.ReplaceAll(conf, "inet:127.0.0.1:8895", "inet:@POLICY@") +
		"  tls_verify_certificates = " + caFile + "\n\nbegin retry\n*  *  F,1h,10m\n"
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(e.dir, d), eximTestUID, eximTestUID)
	}
	for _, f := range []struct{ name, add string }{
		{"passwd", fmt.Sprintf("Debian-exim:x:%d:%d::/nonexistent:/usr/sbin/nologin\n", eximTestUID, eximTestUID)},
		{"group", fmt.Sprintf("Debian-exim:x:%d:\n", eximTestUID)},
	} {
		sys, err := os.ReadFile("/etc/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.dir, f.name), append(sys, f.add...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The loader's cache with the private libraries (Debian's
	// exim4-daemon-heavy needs some a Postfix machine lacks).
	script := fmt.Sprintf(`(find %[1]s/usr/lib -name '*.so*' -printf '%%h\n' | sort -u; echo 'include /etc/ld.so.conf.d/*.conf') > %[2]s/ld.so.conf &&
ldconfig -C %[2]s/ld.so.cache -f %[2]s/ld.so.conf`, filepath.Dir(filepath.Dir(filepath.Dir(bin))), e.dir)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("ldconfig: %v: %s", err, out)
	}
	return e
}

// readmeEximConf is the first code block after "**Exim** (`${readsocket}`" in
// the README (section "TLS policy socket").
func readmeEximConf(readme string) (string, bool) {
	_, rest, ok := strings.Cut(readme, "\n**Exim** (`${readsocket}`")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, "\n```\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	return block + "\n", ok
}

// deliver submits a message for rcpt to Exim, delivered at once (-odi)
// with the policy socket at policy, and returns the main log lines it
// wrote. The retry hints are cleared first: each case is a first attempt.
func (e *eximNetns) deliver(t *testing.T, policy, rcpt, subject string) string {
	t.Helper()
	conf := filepath.Join(e.dir, "exim.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(e.template, "@POLICY@", policy)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(e.dir, "spool/db"))
	// ip netns exec gives Exim the namespace's resolv.conf in a mount
	// namespace of its own, where the private passwd, group and library
	// cache go too, and the private /usr/sbin: Exim re-executes itself as
	// /usr/sbin/exim4 to deliver, setuid root, so that the loader ignores
	// LD_LIBRARY_PATH.
	script := fmt.Sprintf(`mount --bind %[1]s/passwd /etc/passwd && mount --bind %[1]s/group /etc/group &&
mount --bind %[1]s/ld.so.cache /etc/ld.so.cache && mount --bind %[2]s/usr/sbin /usr/sbin &&
exec /usr/sbin/exim4 -C %[3]s -odi -f sender@example.net %[4]s`,
		e.dir, filepath.Dir(filepath.Dir(filepath.Dir(e.bin))), conf, rcpt)
	cmd := exec.Command("ip", "netns", "exec", e.ns, "sh", "-c", script)
	cmd.Stdin = strings.NewReader("From: <sender@example.net>\nTo: <" + rcpt + ">\nSubject: " + subject + "\n\nHello.\n")
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		t.Logf("exim: %v: %s", err, out)
	}
	all := e.log()
	lines := all[min(e.logOffset, len(all)):]
	e.logOffset = len(all)
	return lines
}

func (e *eximNetns) log() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "log/mainlog"))
	return string(b)
}

// lineWith is the first line of s containing sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
