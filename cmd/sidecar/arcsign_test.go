package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/resolver"
)

// arcTestZone holds the key records of the arc package's sealed fixture.
func arcTestZone(t *testing.T) *dnstest.Zone {
	t.Helper()
	b, err := os.ReadFile("../../arc/testdata/sealed-ed25519.zone")
	if err != nil {
		t.Fatal(err)
	}
	z := dnstest.NewZone()
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
			z.Add(line)
		}
	}
	return z
}

// arcTestKey writes a new Ed25519 key for d=relay.example s=fwd, publishes
// it in z and returns the key file.
func arcTestKey(t *testing.T, z *dnstest.Zone) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "arc.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	z.AddRecord(resolver.Record{Name: "fwd._domainkey.relay.example", Type: resolver.TypeTXT,
		TXT: []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}})
	return path
}

func arcCheck(t *testing.T, z resolver.Querier, msg []byte) *arc.Chain {
	t.Helper()
	c, err := (&arc.Validator{DNS: z}).Validate(context.Background(), bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestARCSignCommand(t *testing.T) {
	z := arcTestZone(t)
	key := arcTestKey(t, z)
	srv := dnstest.NewServer(t, z)
	fixture := "../../arc/testdata/sealed-ed25519.eml"
	orig, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"arc-sign", "-domain", "relay.example", "-selector", "fwd", "-key", key, "-dns", srv.Addr()}

	// A two-set chain that passes gets a third set, cv=pass.
	code, out, errs := runCmd(append(base, "-authserv-id", "mx.relay.example", "-ip", "192.0.2.25", "-v", fixture)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.HasSuffix(out, string(orig)) {
		t.Fatal("the message is not printed unchanged after the new set")
	}
	added := strings.TrimSuffix(out, string(orig))
	for i, name := range []string{"ARC-Seal:", "ARC-Message-Signature:", "ARC-Authentication-Results:"} {
		if !strings.Contains(added, name) {
			t.Errorf("field %d %s missing:\n%s", i, name, added)
		}
	}
	if !strings.HasPrefix(added, "ARC-Seal: ") || !strings.Contains(added, "cv=pass") || !strings.Contains(added, "i=3") {
		t.Errorf("new set:\n%s", added)
	}
	aar := strings.Join(strings.Fields(added[strings.Index(added, "ARC-Authentication-Results:"):]), " ")
	if want := "ARC-Authentication-Results: i=3; mx.relay.example; arc=pass (i=2) header.oldest-pass=1 smtp.remote-ip=192.0.2.25"; aar != want {
		t.Errorf("AAR:\n got %s\nwant %s", aar, want)
	}
	if !strings.Contains(errs, "arc=pass (2 instances, oldest pass i=1)") || !strings.Contains(errs, "added ARC Set i=3 cv=pass d=relay.example s=fwd") {
		t.Errorf("-v output:\n%s", errs)
	}
	c := arcCheck(t, z, []byte(out))
	if c.State != arc.Pass || len(c.Instances) != 3 || c.DomainList() != "lists.example:forward.example:relay.example" {
		t.Fatalf("sealed output: %s (%s) %s", c.State, c.Reason, c.DomainList())
	}

	// Our own Authentication-Results are copied into the AAR; the output
	// keeps the message's LF line breaks.
	lf := "Authentication-Results: mx.relay.example; spf=pass smtp.mailfrom=origin.example;\n\tdkim=none\n" +
		"Authentication-Results: other.example; spf=fail\n" +
		strings.ReplaceAll(string(orig), "\r\n", "\n")
	lfPath := filepath.Join(t.TempDir(), "lf.eml")
	os.WriteFile(lfPath, []byte(lf), 0o644)
	code, out, errs = runCmd(append(base, "-authserv-id", "mx.relay.example", lfPath)...)
	if code != 0 {
		t.Fatalf("LF message: exit %d: %s", code, errs)
	}
	if strings.Contains(out, "\r") {
		t.Error("CR in the output of an LF message")
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "ARC-Authentication-Results: i=3; mx.relay.example; spf=pass smtp.mailfrom=origin.example; dkim=none; arc=pass (i=2) header.oldest-pass=1 Authentication-Results: mx.relay.example;") {
		t.Errorf("AAR of the LF message:\n%s", out)
	}
	if c := arcCheck(t, z, []byte(out)); c.State != arc.Pass || len(c.Instances) != 3 {
		t.Errorf("LF message sealed: %s %s", c.State, c.Reason)
	}

	// The output, sealed again from standard input by a fourth hop.
	stdin := filepath.Join(t.TempDir(), "in.eml")
	os.WriteFile(stdin, []byte(out), 0o644)
	f, _ := os.Open(stdin)
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	code, out2, errs := runCmd(append(base, "-authserv-id", "mx2.relay.example", "-")...)
	os.Stdin = saved
	if code != 0 {
		t.Fatalf("stdin: exit %d %s", code, errs)
	}
	if c := arcCheck(t, z, []byte(out2)); c.State != arc.Pass || len(c.Instances) != 4 || c.OldestPass != 1 {
		t.Errorf("four sets: %s %s %d", c.State, c.Reason, len(c.Instances))
	}
}

func TestARCSignCommandRefuses(t *testing.T) {
	z := arcTestZone(t)
	key := arcTestKey(t, z)
	srv := dnstest.NewServer(t, z)
	fixture, _ := os.ReadFile("../../arc/testdata/sealed-ed25519.eml")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	base := []string{"arc-sign", "-domain", "relay.example", "-selector", "fwd", "-key", key, "-dns", srv.Addr()}

	// A broken chain is sealed with cv=fail; that one is then dead.
	tampered := bytes.Replace(fixture, []byte("attached"), []byte("detached"), 1)
	code, out, errs := runCmd(append(base, write("tampered.eml", tampered))...)
	if code != 0 || !strings.Contains(out, "cv=fail") {
		t.Fatalf("broken chain: exit %d %s", code, errs)
	}
	code, out, errs = runCmd(append(base, write("dead.eml", []byte(out)))...)
	if code != 1 || out != "" || !strings.Contains(errs, "not sealed") || !strings.Contains(errs, "cv=fail") {
		t.Errorf("dead chain: exit %d, stdout %q, stderr %s", code, out, errs)
	}

	// A temporary DNS failure: no seal.
	z.SetFault("arc1._domainkey.lists.example", resolver.TypeTXT, dnstest.ServFail)
	code, out, errs = runCmd(append(base, "-timeout", "5s", write("fixture.eml", fixture))...)
	if code != 1 || out != "" || !strings.Contains(errs, "not sealed, try again later: temporary DNS failure") {
		t.Errorf("temporary failure: exit %d, stdout %q, stderr %s", code, out, errs)
	}

	// Usage errors.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"arc-sign", "-selector", "s", "-key", key, "m"}, "-domain is required"},
		{[]string{"arc-sign", "-domain", "d", "-key", key, "m"}, "-selector is required"},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "m"}, "-key is required"},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "-key", key}, "give one MESSAGE"},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "-key", write("bad.pem", []byte("nope")), "m"}, "no PEM private key"},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "-key", key, "-ip", "nope", "m"}, `-ip "nope" is not an IP address`},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "-key", key, filepath.Join(dir, "missing.eml")}, "no such file"},
		// The checks the daemon makes of arc_sign (arc.Signer.Check).
		{[]string{"arc-sign", "-domain", "relay..example", "-selector", "s", "-key", key, "m"}, `"relay..example" is not a valid domain`},
		{[]string{"arc-sign", "-domain", "d", "-selector", "s", "-key", key, "-headers", "from : arc-seal", "m"}, "ARC-Seal cannot be covered"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, errs)
		}
	}
}

// The ARC end-to-end test runs two Postfix instances as the test's own
// processes (internal/testkit/testmta: private config, queue and data directories
// in a temporary directory, smtpd on a loopback port) with a sidecar
// daemon each: a forwarder that seals with arc_sign, relaying to a
// receiver that validates with verify = arc, relaying to an SMTP sink.
//
//	client -> Postfix A + sidecar A (arc_sign) -> Postfix B + sidecar B (verify = arc) -> sink

// arcNeedPostfix skips the test when Postfix cannot run here, except
// under CI=true, where it fails.
func arcNeedPostfix(t *testing.T) {
	t.Helper()
	testmta.NeedPostfix(t, "ARC Postfix end-to-end test")
}

// arcSink accepts every message and hands it over (see testmta.Sink).
func arcSink(t *testing.T) (addr string, msgs <-chan string) {
	t.Helper()
	s := testmta.StartSink(t)
	return s.Addr(), s.Msgs
}

// arcPostfix starts a Postfix master named host whose smtpd runs the
// milter at milterAddr and relays everything to relayAddr. It returns the
// address of its smtpd.
func arcPostfix(t *testing.T, host, milterAddr, relayAddr string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))
	testmta.Start(t, testmta.Config{
		Name:   host,
		Listen: []string{addr},
		Main: []string{
			"myhostname = " + host,
			"mydomain = " + host,
			"myorigin = " + host,
			"inet_interfaces = 127.0.0.1",
			"inet_protocols = ipv4",
			"mynetworks = 127.0.0.0/8",
			"relayhost = " + testmta.Relayhost(relayAddr),
			"smtp_dns_support_level = disabled",
			"smtp_tls_security_level = none",
			"smtpd_milters = { inet:" + milterAddr + ", default_action=tempfail }",
			"milter_protocol = 6",
		},
	})
	return addr
}

// arcDaemon starts a sidecar daemon with conf (milter_listen and
// dns_servers are added) and returns it and its milter address.
func arcDaemon(t *testing.T, bin, dns, conf string) (*daemonProc, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sidecar.conf")
	conf = "milter_listen = inet:127.0.0.1:0\npolicy_listen =\ndns_servers = " + dns + "\n" + conf
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "-config", path)
	addr := d.boundAddr("milter_listen")
	d.waitFor(`sidecar started`)
	return d, addr
}

func TestARCForwarderThroughPostfix(t *testing.T) {
	arcNeedPostfix(t)
	bin := buildBinary(t)
	z := arcTestZone(t)
	key := arcTestKey(t, z) // fwd._domainkey.relay.example
	dns := dnstest.NewServer(t, z)

	forwarder, forwarderMilter := arcDaemon(t, bin, dns.Addr(), `authserv_id = mx.relay.example
arc_sign = relay.example : fwd : `+key+`
acl_smtp_data = d
begin acl
d:
  accept
`)
	receiver, receiverMilter := arcDaemon(t, bin, dns.Addr(), `authserv_id = mx.example.net
acl_smtp_data = d
begin acl
d:
  deny    !verify = arc/pass
          message = 550 5.7.1 ARC chain $arc_state: $arc_state_reason
  accept  add_header = X-ARC: state=$arc_state oldest=$arc_oldest_pass domains=$arc_domains
`)
	sink, msgs := arcSink(t)
	pfB := arcPostfix(t, "mx.example.net", receiverMilter, sink)
	pfA := arcPostfix(t, "mx.relay.example", forwarderMilter, pfB)

	fixture, err := os.ReadFile("../../arc/testdata/sealed-ed25519.eml")
	if err != nil {
		t.Fatal(err)
	}
	if err := testmta.Submit(pfA, testmta.Submission{Helo: "mx.origin.example",
		From: "alice@origin.example", To: []string{"bob@example.net"}, Data: fixture}); err != nil {
		t.Fatalf("the forwarder refused the message: %v", err)
	}

	var msg string
	select {
	case msg = <-msgs:
	case <-time.After(60 * time.Second):
		t.Fatalf("no message reached the sink\nforwarder log:\n%s\nreceiver log:\n%s",
			strings.Join(forwarder.log, "\n"), strings.Join(receiver.log, "\n"))
	}
	hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
	t.Logf("the header as delivered:\n%s", hdr)
	flat := strings.Join(strings.Fields(hdr), " ")
	for _, want := range []string{
		// The receiver's verdict and variables.
		"X-ARC: state=pass oldest=1 domains=lists.example:forward.example:relay.example",
		// The receiver's Authentication-Results (RFC 8617 §10.2).
		"arc=pass (i=3) header.oldest-pass=1 smtp.remote-ip=127.0.0.1",
		// The forwarder's seal, and its ARC-Authentication-Results copying
		// its own Authentication-Results.
		"ARC-Seal: a=ed25519-sha256;",
		"cv=pass; d=relay.example; i=3; s=fwd;",
		"ARC-Authentication-Results: i=3; mx.relay.example;",
		"arc=pass (i=2) header.oldest-pass=1 smtp.remote-ip=127.0.0.1",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the delivered header lacks %q:\n%s", want, hdr)
		}
	}
	// The delivered message still validates, as a third hop would see it.
	chain := arcCheck(t, z, []byte(msg))
	if chain.State != arc.Pass || len(chain.Instances) != 3 || chain.OldestPass != 1 {
		t.Errorf("delivered message: %s (%s), %d sets, oldest pass %d\n%s", chain.State, chain.Reason, len(chain.Instances), chain.OldestPass, hdr)
	}
	forwarder.stop()
	receiver.stop()
}
