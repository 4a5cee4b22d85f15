package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/internal/dnstest"
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
	} {
		code, _, errs := runCmd(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, errs)
		}
	}
}
