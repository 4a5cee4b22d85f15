package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// checkZone: sender.example publishes SPF for 192.0.2.0/24, a DKIM key
// "sel" and DMARC p=reject; quar.example p=quarantine.
func checkZone(t *testing.T, key *rsa.PrivateKey) *dnstest.Zone {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var chunks []string
	for len(rec) > 255 {
		chunks, rec = append(chunks, rec[:255]), rec[255:]
	}
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "sel._domainkey.sender.example", Type: resolver.TypeTXT, TXT: append(chunks, rec)})
	for _, d := range []string{"sender.example", "quar.example"} {
		z.AddRecord(resolver.Record{Name: d, Type: resolver.TypeTXT, TXT: []string{"v=spf1 ip4:192.0.2.0/24 -all"}})
	}
	z.AddRecord(resolver.Record{Name: "_dmarc.sender.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1; p=reject"}})
	z.AddRecord(resolver.Record{Name: "_dmarc.quar.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1; p=quarantine"}})
	return z
}

const checkMsg = "From: Alice <alice@sender.example>\nTo: Bob <bob@example.org>\nSubject: lunch\n" +
	"Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <1@sender.example>\n\nSee you at noon.\n"

// seedConf is the seed's DMARC example ACL (seed 001, "Example usage").
var seedConf = "primary_hostname = mx.example.net\n" + readSeed("../../testdata/seed-dmarc-example.conf")

func TestCheckCommand(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.NewServer(t, checkZone(t, key))
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var signed bytes.Buffer
	crlf := strings.ReplaceAll(checkMsg, "\n", "\r\n")
	if err := msgdkim.Sign(&signed, strings.NewReader(crlf), &msgdkim.SignOptions{Domain: "sender.example", Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
		t.Fatal(err)
	}
	signedFile := write("signed.eml", strings.ReplaceAll(signed.String(), "\r\n", "\n")) // LF, as saved by a mail client
	plainFile := write("plain.eml", "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"+checkMsg)
	quarFile := write("quar.eml", strings.ReplaceAll(checkMsg, "sender.example", "quar.example"))
	noFrom := write("nofrom.eml", "To: bob@example.org\nSubject: x\n\nhi\n")
	seed := write("seed.conf", seedConf)
	defConf := write("default.conf", "primary_hostname = mx.example.net\n")
	history := filepath.Join(dir, "dmarc.dat")
	withHistory := write("history.conf", "primary_hostname = mx.example.net\ndmarc_history_file = "+history+"\n")

	dns := []string{"-dns", srv.Addr()}
	tests := []struct {
		name string
		args []string
		code int
		want []string // in this order in stdout (stderr for usage errors)
	}{
		{"signed, from an unlisted address: DKIM makes DMARC pass",
			[]string{"-ip", "203.0.113.9", "-helo", "mail.sender.example", "-config", defConf, signedFile}, 0, []string{
				"client:     203.0.113.9, HELO mail.sender.example\n",
				"sender:     alice@sender.example (from the From header)\n",
				"connect:    accept\n", "helo:       accept\n", "mail:       accept\n", "rcpt bob@example.org: accept\n", "data:       accept",
				"spf:        fail (mechanism '-all' matched) mailfrom sender.example\n",
				"dkim:       pass d=sender.example s=sel a=rsa-sha256 i=@sender.example b=",
				"dmarc:      accept (",
				"from sender.example; record of sender.example; policy reject; SPF aligned: no; DKIM aligned: yes\n",
				"result:     the message would be accepted\n",
				// as the milter folds it (authres.Format)
				"Authentication-Results: mx.example.net;\n\tspf=fail reason=\"mechanism '-all' matched\"\n\tsmtp.mailfrom=sender.example;\n" +
					"\tdkim=pass header.d=sender.example header.i=@sender.example\n\theader.s=sel header.a=rsa-sha256 header.b=",
				"\tdmarc=pass (p=reject dis=none) header.from=sender.example;\n",
			}},
		{"the seed's ACL rejects a spoof",
			[]string{"-ip", "203.0.113.9", "-helo", "evil.example", "-sender", "<alice@sender.example>", "-config", seed, plainFile}, 1, []string{
				"data:       deny: Message from sender.example failed sender's DMARC policy, REJECT  [acl_check_data ",
				"spf:        fail",
				"dkim:       none (no signatures)\n",
				"dmarc:      reject (",
				"log:        [data acl_check_data] log_message: DMARC DEBUG: 'reject' for sender.example\n",
				"result:     the message would not be accepted\n",
			}},
		{"the seed's ACL flags p=quarantine and adds the DMARC header",
			[]string{"-ip", "203.0.113.9", "-helo", "evil.example", "-config", seed, "-rcpt", "bob@example.org", quarFile}, 0, []string{
				"dmarc:      quarantine (",
				"log:        [data acl_check_data] log_message: DMARC DEBUG: 'quarantine' for quar.example\n",
				"result:     the message would be accepted\n",
			}},
		{"the seed's ACL: a local host sending to a local domain has DMARC off",
			[]string{"-ip", "127.0.0.1", "-config", seed, plainFile}, 0, []string{
				"dmarc:      off (DMARC verification disabled (control = dmarc_disable_verify))\n",
				"log:        [data acl_check_data] log_message: DMARC DEBUG: off \n",
				"result:     the message would be accepted\n",
			}},
		{"the embedded default configuration never rejects",
			[]string{"-ip", "203.0.113.9", "-helo", "evil.example", plainFile}, 0, []string{
				"data:       accept", "dmarc:      reject (",
				"log:        [data acl_check_data] log_message: DMARC reject for sender.example (policy reject, DKIM none): not enforced\n",
				"result:     the message would be accepted\n",
				"\tdmarc=fail (p=reject dis=none) header.from=sender.example\n\tpolicy.dmarc=reject",
			}},
		{"no -ip: a local submission, DKIM only",
			[]string{"-config", defConf, signedFile}, 0, []string{
				"client:     local submission (no -ip)\n", "dkim:       pass", "dmarc:      off (DMARC not checked for a local submission)\n",
			}},
		{"no From",
			[]string{"-ip", "192.0.2.5", "-sender", "alice@sender.example", "-config", defConf, noFrom}, 0, []string{
				"spf:        pass", "dmarc:      nofrom (", "\tdmarc=permerror (no From header field)",
			}},
		{"no history record is written",
			[]string{"-ip", "203.0.113.9", "-config", withHistory, plainFile}, 0, []string{"dmarc:      reject ("}},
		{"usage: no message", []string{"-ip", "192.0.2.5"}, 2, []string{"one MESSAGE file is needed"}},
		{"usage: bad -ip", []string{"-ip", "300.1.1.1", plainFile}, 2, []string{`-ip "300.1.1.1" is not an IP address`}},
		{"missing file", []string{filepath.Join(dir, "nothing.eml")}, 2, []string{"no such file"}},
		{"bad configuration", []string{"-config", write("bad.conf", "dmarc_discovery = nope\n"), plainFile}, 2, []string{"dmarc_discovery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append(append([]string{"check"}, dns...), tt.args...), &stdout, &stderr)
			out := stdout.String()
			if tt.code == 2 {
				out = stderr.String()
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("output lacks (in order) %q:\n%s", w, out)
					break
				}
				rest = rest[i+len(w):]
			}
		})
	}
	if _, err := os.Stat(history); !os.IsNotExist(err) {
		t.Errorf("sidecar check wrote the history file: %v", err)
	}
}

// Standard input works as the message.
func TestCheckCommandStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.WriteString(checkMsg)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-dns", "127.0.0.1:9", "-timeout", "2s", "-"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "dkim:       none (no signatures)") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestParseMessage(t *testing.T) {
	m := parseMessage([]byte("Subject : folded\n\tline\nX:\n\nbody\nline\n"))
	if len(m.headers) != 2 || m.headers[0].Name != "Subject" || m.headers[0].Value != " folded\r\n\tline" || m.headers[1].Value != "" {
		t.Errorf("headers %q", m.headers)
	}
	if string(m.body) != "body\r\nline\r\n" {
		t.Errorf("body %q", m.body)
	}
	m = parseMessage([]byte("A: 1\nnot a header\nmore\n"))
	if len(m.headers) != 1 || string(m.body) != "not a header\r\nmore\r\n" {
		t.Errorf("no empty line: %q %q", m.headers, m.body)
	}
}

// The seed's DMARC example end to end through real Postfix (the test's own
// master, as the ARC end-to-end test runs it) and the sidecar daemon: a
// spoof of a p=reject domain is refused at end of DATA with the seed's
// text, a p=quarantine failure is held by the ACL's control = quarantine
// (Postfix's hold queue), a signed message is delivered with our
// Authentication-Results and the seed's $dmarc_ar_header. Every message
// DMARC checked leaves a history record with Postfix's queue ID, and the
// file is reopened on SIGHUP after rotation.
func TestSeedDMARCThroughPostfix(t *testing.T) {
	arcNeedPostfix(t)
	bin := buildBinary(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.NewServer(t, checkZone(t, key))
	history := filepath.Join(t.TempDir(), "dmarc.dat")
	// The seed's ACL, with the quarantine flag turned into the milter's
	// quarantine; the client (127.0.0.1) is not one of its local hosts.
	conf := strings.Replace(seedConf, "hostlist local_hosts = 127.0.0.1", "hostlist local_hosts = 192.0.2.99", 1)
	conf = strings.Replace(conf, "          set $acl_m_quarantine = 1\n", "          control        = quarantine/DMARC quarantine policy\n", 1)
	conf = strings.Replace(conf, "primary_hostname = mx.example.net\n", "primary_hostname = mx.example.net\nauthserv_id = mx.example.net\ndmarc_history_file = "+history+"\n", 1)
	daemon, milterAddr := arcDaemon(t, bin, dns.Addr(), conf)
	sink, msgs := arcSink(t)
	pf := arcPostfix(t, "mx.dmarc.example", milterAddr, sink)

	send := func(from, msg string) error {
		c, err := smtp.Dial(pf)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.example"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail(from); err != nil {
			return err
		}
		if err := c.Rcpt("bob@example.net"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write([]byte(msg))
		err = w.Close()
		c.Quit()
		return err
	}
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

	// 1. A spoof of sender.example (p=reject) from an address SPF refuses.
	err = send("alice@sender.example", crlf(checkMsg))
	if err == nil || !strings.Contains(err.Error(), "Message from sender.example failed sender's DMARC policy, REJECT") {
		t.Errorf("spoof: %v, want the seed's rejection", err)
	}

	// 2. A spoof of quar.example (p=quarantine): accepted, then held.
	if err := send("alice@quar.example", crlf(strings.ReplaceAll(checkMsg, "sender.example", "quar.example"))); err != nil {
		t.Errorf("quarantine: %v", err)
	}

	// 3. A signed message from sender.example: delivered.
	var signed bytes.Buffer
	if err := msgdkim.Sign(&signed, strings.NewReader(crlf(checkMsg)), &msgdkim.SignOptions{Domain: "sender.example", Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
		t.Fatal(err)
	}
	if err := send("alice@sender.example", signed.String()); err != nil {
		t.Fatalf("signed: %v", err)
	}
	var msg string
	select {
	case msg = <-msgs:
	case <-time.After(60 * time.Second):
		t.Fatalf("no message reached the sink\ndaemon log:\n%s", strings.Join(daemon.log, "\n"))
	}
	hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
	t.Logf("the header as delivered:\n%s", hdr)
	flat := strings.Join(strings.Fields(hdr), " ")
	for _, want := range []string{
		"Authentication-Results: mx.example.net; spf=fail",
		"dkim=pass header.d=sender.example header.i=@sender.example header.s=sel header.a=rsa-sha256 header.b=",
		"dmarc=pass (p=reject dis=none) header.from=sender.example",
		"Subject: lunch",
		// the seed's add_header = $dmarc_ar_header
		"Authentication-Results: mx.example.net; dmarc=pass (p=reject dis=none) header.from=sender.example",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the delivered header lacks %q:\n%s", want, hdr)
		}
	}
	select {
	case m := <-msgs:
		t.Errorf("a second message reached the sink (the quarantined one?):\n%s", m)
	case <-time.After(2 * time.Second):
	}
	daemon.waitFor(`quarantine="DMARC quarantine policy"`)

	// The history file: three records, with Postfix's queue IDs.
	b, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	jobs := regexp.MustCompile(`(?m)^job (\S+)$`).FindAllStringSubmatch(string(b), -1)
	if len(jobs) != 3 || strings.Count(string(b), "\naction ") != 3 {
		t.Fatalf("history file:\n%s", b)
	}
	for _, j := range jobs {
		if j[1] == "(unknown-jobid)" {
			t.Errorf("no queue ID in the history record:\n%s", b)
		}
	}
	for _, want := range []string{"policy 16\n", "policy 17\n", "policy 15\n", "action 0\n", "action 4\n", "action 2\n", "ipaddr 127.0.0.1\n", "reporter mx.example.net\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("history file lacks %q:\n%s", want, b)
		}
	}

	// Rotation: rename, SIGHUP, the next record goes to a new file.
	if err := os.Rename(history, history+".1"); err != nil {
		t.Fatal(err)
	}
	daemon.cmd.Process.Signal(syscall.SIGHUP)
	daemon.waitFor(`configuration reloaded`)
	send("alice@sender.example", crlf(checkMsg))
	b, err = os.ReadFile(history)
	if err != nil || strings.Count(string(b), "job ") != 1 || !strings.Contains(string(b), "policy 16\n") {
		t.Errorf("after rotation: %v\n%s", err, b)
	}
	daemon.stop()
}

// TestCheckCommandPrintsARCChain: sidecar check shows the ARC chain,
// instance by instance (issue 6).
func TestCheckCommandPrintsARCChain(t *testing.T) {
	zone := dnstest.NewZone()
	zb, err := os.ReadFile("../../arc/testdata/sealed-ed25519.zone")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(zb), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
			zone.Add(line)
		}
	}
	srv := dnstest.NewServer(t, zone)
	code, out, errs := runCmd("check", "-ip", "192.0.2.99", "-helo", "relay.example", "-sender", "alice@origin.example",
		"-dns", srv.Addr(), "../../arc/testdata/sealed-ed25519.eml")
	for _, want := range []string{
		"arc:        pass (2 instances, oldest pass i=",
		"i=1 ARC-Seal d=lists.example s=arc1 cv=none: verified",
		"i=2 ARC-Seal d=forward.example s=arc2 cv=pass: verified",
		"arc=pass",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q (exit %d):\n%s%s", want, code, out, errs)
		}
	}
}

// readSeed reads the seed's DMARC example configuration shared by the tests.
func readSeed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}
