package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/resolver"
)

// The DKIM signing end-to-end test:
//
//	SMTP client 127.0.0.1 (trusted: control = dkim_sign)  ┐
//	SMTP client 127.0.0.2 (outside: not signed)           ├─> Postfix A + sidecar (smtpd_milters, non_smtpd_milters)
//	sendmail command (local submission: signed)           ┘     -> Postfix B + OpenDKIM verifying (milter) -> sink
//
// Each message reaching the sink is verified with our dkim package,
// go-msgauth and dkimpy; OpenDKIM's verdict is its Authentication-Results.

// signE2EKeys writes the key files example.com.{rsa,ed}.pem into dir and
// returns the key records by DNS name.
func signE2EKeys(t *testing.T, dir string) map[string]string {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]string{}
	for sel, k := range map[string]crypto.Signer{"rsa": rk, "ed": ek} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "example.com."+sel+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		switch pub := k.Public().(type) {
		case *rsa.PublicKey:
			pder, _ := x509.MarshalPKIXPublicKey(pub)
			recs[sel+"._domainkey.example.com"] = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pder)
		case ed25519.PublicKey:
			recs[sel+"._domainkey.example.com"] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
		}
	}
	return recs
}

func signE2EZone(recs map[string]string) *dnstest.Zone {
	z := dnstest.NewZone()
	for name, rec := range recs {
		var chunks []string
		for len(rec) > 255 {
			chunks, rec = append(chunks, rec[:255]), rec[255:]
		}
		z.AddRecord(resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: append(chunks, rec)})
	}
	return z
}

// needTool skips the test when a program is missing, except under
// CI=true, where it fails.
func needTool(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	reason := path + " is missing (Debian package " + pkg + ")"
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", reason)
	}
	fmt.Println("skipping the DKIM signing end-to-end test:", reason)
	t.Skip(reason)
}

// startOpenDKIM runs OpenDKIM as a verifying milter, the test's own
// process, with the key records given as TestDNSData (no DNS), and
// returns its milter address.
func startOpenDKIM(t *testing.T, recs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var data strings.Builder
	for name, rec := range recs {
		data.WriteString(name + " " + rec + "\n")
	}
	dataPath := filepath.Join(dir, "dns.txt")
	port := testmta.FreePort(t)
	conf := fmt.Sprintf("Mode v\nSocket inet:%d@127.0.0.1\nTestDNSData file:%s\nSyslog no\nBackground no\nAuthservID opendkim.test\nPidFile %s\nUserID root\nAlwaysAddARHeader yes\n",
		port, dataPath, filepath.Join(dir, "pid"))
	confPath := filepath.Join(dir, "opendkim.conf")
	for p, text := range map[string]string{dataPath: data.String(), confPath: conf} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log testmta.SyncBuffer
	cmd := exec.Command("/usr/sbin/opendkim", "-f", "-v", "-x", confPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("opendkim output:\n%s", log.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for end := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(end) {
			t.Fatalf("opendkim did not listen on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signE2EPostfix starts a Postfix named host that relays everything to
// relay, with the milter for smtpd and, when local, for the sendmail
// command too (non_smtpd_milters, with the pickup service).
func signE2EPostfix(t *testing.T, host, milter, relay string, local bool) (*testmta.Postfix, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))
	main := []string{
		"myhostname = " + host, "mydomain = " + host, "myorigin = " + host,
		"inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"relayhost = " + testmta.Relayhost(relay),
		"smtp_dns_support_level = disabled", "smtp_tls_security_level = none",
		"smtpd_milters = { inet:" + milter + ", default_action=tempfail }",
		"milter_protocol = 6",
	}
	var services []string
	if local {
		main = append(main, "non_smtpd_milters = { inet:"+milter+", default_action=tempfail }")
		services = []string{"pickup unix n - n 1 1 pickup"}
	}
	pf := testmta.Start(t, testmta.Config{Name: host, Listen: []string{addr}, Main: main, Services: services})
	return pf, addr
}

const dkimpyVerify = `
import base64, json, sys, dkim
job = json.load(sys.stdin)
keys = job["keys"]
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    return keys.get(n.rstrip("."), "").encode()
out = []
for m in job["msgs"]:
    msg = base64.b64decode(m)
    d = dkim.DKIM(msg)
    n = sum(1 for l in msg.split(b"\r\n\r\n")[0].split(b"\r\n") if l.lower().startswith(b"dkim-signature:"))
    out.append([bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(n)])
print(json.dumps(out))
`

// dkimpyResults verifies every signature of each message with dkimpy.
func dkimpyResults(t *testing.T, recs map[string]string, msgs []string) [][]bool {
	t.Helper()
	job := map[string]any{"keys": recs}
	var b64 []string
	for _, m := range msgs {
		b64 = append(b64, base64.StdEncoding.EncodeToString([]byte(m)))
	}
	job["msgs"] = b64
	in, _ := json.Marshal(job)
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", dkimpyVerify)
	cmd.Dir = t.TempDir()
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, stderr.String())
	}
	var res [][]bool
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("dkimpy output %q: %v", out, err)
	}
	return res
}

func TestDKIMSigningThroughPostfix(t *testing.T) {
	testmta.NeedPostfix(t, "DKIM signing end-to-end test")
	needTool(t, "/usr/sbin/opendkim", "opendkim")
	needTool(t, "/usr/sbin/sendmail", "postfix")
	if err := exec.Command("/usr/bin/python3", "-I", "-c", "import dkim, nacl").Run(); err != nil {
		needTool(t, "/nonexistent/dkimpy", "python3-dkim")
	}
	bin := buildBinary(t)
	keyDir := t.TempDir()
	recs := signE2EKeys(t, keyDir)
	z := signE2EZone(recs)
	dns := dnstest.NewServer(t, z)

	d, milterAddr := arcDaemon(t, bin, dns.Addr(), `authserv_id = mx.example.com
dkim_domain = ${lc:${domain:$h_from:}}
dkim_selector = rsa : ed
dkim_private_key = `+keyDir+`/${dkim_domain}.${dkim_selector}.pem
acl_smtp_rcpt = r
begin acl
r:
  accept hosts = 127.0.0.1
         control = dkim_sign
  accept
`)
	sink, msgs := arcSink(t)
	_, pfB := signE2EPostfix(t, "mx.example.net", startOpenDKIM(t, recs), sink, false)
	pfA, pfAAddr := signE2EPostfix(t, "out.example.com", milterAddr, pfB, true)

	body := "Hello Bob,\r\n\r\nthe figures, as promised.  \r\n"
	message := func(subject string) []byte {
		return []byte("From: Alice <alice@Example.com>\r\nTo: bob@example.net\r\nSubject: " + subject +
			"\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.com>\r\n\r\n" + body)
	}
	from := func(ip string) func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).Dial
	}
	for _, s := range []struct{ ip, subject string }{{"127.0.0.1", "trusted client"}, {"127.0.0.2", "outside client"}} {
		if err := testmta.Submit(pfAAddr, testmta.Submission{Helo: "client.example.com", From: "alice@example.com",
			To: []string{"bob@example.net"}, Data: message(s.subject), Dial: from(s.ip)}); err != nil {
			t.Fatalf("%s: %v", s.subject, err)
		}
	}
	sm := exec.Command("/usr/sbin/sendmail", "-C", pfA.Config, "-f", "alice@example.com", "bob@example.net")
	sm.Stdin = bytes.NewReader(bytes.ReplaceAll(message("sendmail command"), []byte("\r\n"), []byte("\n")))
	if out, err := sm.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v\n%s", err, out)
	}

	got := map[string]string{}
	for len(got) < 3 {
		select {
		case m := <-msgs:
			hdr, _, _ := strings.Cut(m, "\r\n\r\n")
			for _, subj := range []string{"trusted client", "outside client", "sendmail command"} {
				if strings.Contains(hdr, "Subject: "+subj) {
					got[subj] = m
				}
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("%d of 3 messages reached the sink\nsidecar log:\n%s\nPostfix A:\n%s", len(got), strings.Join(d.log, "\n"), pfA.Log())
		}
	}
	signed := []string{got["trusted client"], got["sendmail command"]}
	py := dkimpyResults(t, recs, signed)
	for i, name := range []string{"trusted client", "sendmail command"} {
		m := signed[i]
		hdr, _, _ := strings.Cut(m, "\r\n\r\n")
		t.Logf("%s, as delivered:\n%s", name, hdr)
		// Ours.
		rs, err := (&dkim.Verifier{DNS: z}).Verify(context.Background(), strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		var ours []string
		for _, r := range rs {
			ours = append(ours, r.Selector+":"+string(r.Status))
		}
		if strings.Join(ours, " ") != "rsa:pass ed:pass" {
			t.Errorf("%s: our verifier says %q, want rsa:pass ed:pass", name, ours)
		}
		// go-msgauth.
		vs, err := msgdkim.VerifyWithOptions(strings.NewReader(m), &msgdkim.VerifyOptions{LookupTXT: resolver.TXTLookup(context.Background(), z)})
		if err != nil || len(vs) != 2 {
			t.Errorf("%s: go-msgauth: %d verifications, %v", name, len(vs), err)
		}
		for _, v := range vs {
			if v.Err != nil {
				t.Errorf("%s: go-msgauth: d=%s: %v", name, v.Domain, v.Err)
			}
		}
		// dkimpy.
		if len(py[i]) != 2 || !py[i][0] || !py[i][1] {
			t.Errorf("%s: dkimpy says %v, want [true true]", name, py[i])
		}
		// OpenDKIM, as a milter of the next hop.
		flat := strings.Join(strings.Fields(hdr), " ")
		for _, want := range []string{"opendkim.test; dkim=pass", "header.d=example.com header.i=@example.com header.a=rsa-sha256 header.s=rsa",
			"dkim=pass header.d=example.com header.i=@example.com header.a=ed25519-sha256 header.s=ed"} {
			if !strings.Contains(flat, want) {
				t.Errorf("%s: OpenDKIM's Authentication-Results lack %q", name, want)
			}
		}
		if strings.Contains(flat, "dkim=fail") {
			t.Errorf("%s: OpenDKIM found a failing signature", name)
		}
	}
	if strings.Contains(got["outside client"], "DKIM-Signature:") {
		t.Errorf("mail from outside was signed:\n%s", got["outside client"])
	}
	t.Logf("sidecar: %s", d.waitFor(`message_id=sendmail-command@example.com`))
	d.stop()
}
