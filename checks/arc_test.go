package checks

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// The sealed fixture of the arc package: a two-set chain by lists.example
// and forward.example, with its key records.
const (
	arcFixtureEML  = "../arc/testdata/sealed-ed25519.eml"
	arcFixtureZone = "../arc/testdata/sealed-ed25519.zone"
	arcClientIP    = "192.0.2.25"
)

// arcFixtureTime is the t= of the fixture's seals.
var arcFixtureTime = func() time.Time { return time.Unix(1751364000, 0) }

func arcFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(arcFixtureEML)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// arcZone returns a zone with the fixture's key records.
func arcZone(t testing.TB) *dnstest.Zone {
	t.Helper()
	b, err := os.ReadFile(arcFixtureZone)
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

// arcPlainMessage is a message without ARC fields.
const arcPlainMessage = "From: Alice <alice@origin.example>\r\n" +
	"To: bob@mx.example.net\r\n" +
	"Subject: hello\r\n" +
	"Date: Tue, 1 Jul 2025 09:59:00 +0000\r\n" +
	"Message-ID: <plain@origin.example>\r\n" +
	"\r\n" +
	"Hi Bob.\r\n"

func arcLoad(t testing.TB, text string) *acl.Program {
	t.Helper()
	p, err := arcTryLoad(text)
	if err != nil {
		t.Fatalf("load:\n%s", config.AsList(err).Format())
	}
	return p
}

func arcTryLoad(text string) (*acl.Program, error) {
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		return nil, err
	}
	reg := acl.NewRegistry()
	Register(reg)
	return acl.Compile(cfg, reg)
}

// arcSplit splits a message into header fields as the milter keeps them
// (the raw value after the colon, folding kept, no final CRLF) and the
// body.
func arcSplit(msg []byte) ([]acl.Header, []byte) {
	var hs []acl.Header
	rest := msg
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			break
		}
		if (text[0] == ' ' || text[0] == '\t') && len(hs) > 0 {
			hs[len(hs)-1].Value += "\r\n" + text
			continue
		}
		name, value, _ := strings.Cut(text, ":")
		hs = append(hs, acl.Header{Name: name, Value: value})
	}
	return hs, rest
}

// arcMessageTxn runs a message through prog as the milter does: the
// earlier stages, the header fields, the body writer (in small chunks),
// then the DATA stage.
func arcMessageTxn(t testing.TB, prog *acl.Program, dns resolver.Querier, msg []byte) (*acl.Txn, acl.Result) {
	t.Helper()
	svc := &acl.Services{DNS: dns, PrimaryHostname: "mx.example.net", AuthservID: "mx.example.net", Now: arcFixtureTime}
	res, txn := deliver(t, prog, svc, delivery{ip: arcClientIP, helo: "relay.example", sender: "alice@origin.example",
		rcpts: []string{"bob@mx.example.net"}, msg: string(msg), chunk: 7})
	return txn, res
}

// arcAuthResult returns the arc entry of the transaction's results.
func arcAuthResult(txn *acl.Txn) (acl.AuthResult, bool) {
	for _, r := range txn.AuthResults {
		if r.Method == "arc" {
			return r, true
		}
	}
	return acl.AuthResult{}, false
}

func arcLogText(txn *acl.Txn) string {
	var b strings.Builder
	for _, l := range txn.Logs {
		b.WriteString(l.Kind + ": " + l.Text + "\n")
	}
	return b.String()
}

// arcVarsConf logs the variables, and tests the condition with LIST.
func arcVarsConf(list string) string {
	return `acl_smtp_data = data
begin acl
data:
  warn logwrite = state=$arc_state reason=$arc_state_reason domains=$arc_domains oldest=$arc_oldest_pass
  accept verify = ` + list + `
  deny
`
}

func TestARCPassFailNone(t *testing.T) {
	fixture := arcFixture(t)
	tampered := bytes.Replace(fixture, []byte("the figures are attached"), []byte("the figures are detached"), 1)
	if bytes.Equal(tampered, fixture) {
		t.Fatal("tampering failed")
	}
	oldSeal := bytes.Replace(fixture, []byte("cv=pass; d=forward.example"), []byte("cv=none; d=forward.example"), 1)
	tests := []struct {
		name      string
		msg       []byte
		state     string
		domains   string
		oldest    string
		reason    string // substring
		pass      []string
		fail      []string
		authres   string
		authProps []acl.AuthProp
	}{
		{name: "pass", msg: fixture, state: "pass", domains: "lists.example:forward.example", oldest: "1",
			pass: []string{"arc", "arc/pass", "arc/pass:none", "arc/!fail", "arc / pass", "ARC/PASS"}, fail: []string{"arc/fail", "arc/none", "arc/!pass"},
			authres: "pass", authProps: []acl.AuthProp{{Type: "header", Name: "oldest-pass", Value: "1"}, {Type: "smtp", Name: "remote-ip", Value: arcClientIP}}},
		{name: "body changed", msg: tampered, state: "fail", domains: "lists.example:forward.example", oldest: "0", reason: "i=2: ARC-Message-Signature",
			pass: []string{"arc/fail", "arc/fail:pass", "arc/!pass"}, fail: []string{"arc", "arc/pass:none", "arc/none"},
			authres: "fail", authProps: []acl.AuthProp{{Type: "smtp", Name: "remote-ip", Value: arcClientIP}}},
		{name: "bad cv", msg: oldSeal, state: "fail", domains: "lists.example:forward.example", oldest: "0", reason: "cv",
			pass: []string{"arc/fail"}, fail: []string{"arc", "arc/pass"},
			authres: "fail", authProps: []acl.AuthProp{{Type: "smtp", Name: "remote-ip", Value: arcClientIP}}},
		{name: "none", msg: []byte(arcPlainMessage), state: "none", domains: "", oldest: "0",
			pass: []string{"arc", "arc/none", "arc/!pass", "arc/"}, fail: []string{"arc/pass", "arc/fail"},
			authres: "none"},
	}
	zone := arcZone(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, list := range append(append([]string(nil), tc.pass...), tc.fail...) {
				want := acl.Accept
				if arcContains(tc.fail, list) {
					want = acl.Deny
				}
				prog := arcLoad(t, arcVarsConf(list))
				txn, res := arcMessageTxn(t, prog, zone, tc.msg)
				if res.Verb != want {
					t.Errorf("verify = %s: %s (%v), want %s\n%s", list, res.Verb, res.Err, want, arcLogText(txn))
				}
				logs := arcLogText(txn)
				wantLog := "logwrite: state=" + tc.state + " reason="
				if !strings.HasPrefix(logs, wantLog) || !strings.Contains(logs, " domains="+tc.domains+" oldest="+tc.oldest+"\n") {
					t.Errorf("variables: %q, want state %s domains %q oldest %s", logs, tc.state, tc.domains, tc.oldest)
				}
				if !strings.Contains(strings.SplitN(logs, " domains=", 2)[0], tc.reason) {
					t.Errorf("reason %q does not contain %q", logs, tc.reason)
				}
				ar, ok := arcAuthResult(txn)
				if !ok || ar.Result != tc.authres || !arcSameProps(ar.Props, tc.authProps) {
					t.Errorf("A-R: %+v, want arc=%s %v", ar, tc.authres, tc.authProps)
				}
				if tc.state == "fail" && !strings.Contains(ar.Comment, tc.reason) {
					t.Errorf("A-R comment %q, want %q in it", ar.Comment, tc.reason)
				}
				if tc.state == "pass" && ar.Comment != "i=2" {
					t.Errorf("A-R comment %q, want i=2", ar.Comment)
				}
			}
		})
	}
}

func arcSameProps(a, b []acl.AuthProp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestARCAuthResOff(t *testing.T) {
	prog := arcLoad(t, "arc_authres = false\n")
	txn, res := arcMessageTxn(t, prog, arcZone(t), arcFixture(t))
	if res.Verb != acl.Accept {
		t.Fatal(res)
	}
	if ar, ok := arcAuthResult(txn); ok {
		t.Errorf("arc_authres = false still reports %+v", ar)
	}
}

func TestARCTemporaryDNSFailure(t *testing.T) {
	for _, fault := range []dnstest.Fault{dnstest.Timeout, dnstest.ServFail} {
		zone := arcZone(t)
		zone.SetFault("arc1._domainkey.lists.example", resolver.TypeTXT, fault)
		prog := arcLoad(t, arcVarsConf("arc/pass:fail:none"))
		txn, res := arcMessageTxn(t, prog, zone, arcFixture(t))
		if res.Verb != acl.Defer {
			t.Errorf("fault %v: verify = arc gave %s, want defer", fault, res.Verb)
		}
		if !strings.Contains(arcLogText(txn), "state=temperror reason=temporary DNS failure") {
			t.Errorf("fault %v: variables: %s", fault, arcLogText(txn))
		}
		if ar, _ := arcAuthResult(txn); ar.Result != "temperror" {
			t.Errorf("fault %v: A-R %+v, want arc=temperror", fault, ar)
		}
	}
}

func TestARCWithoutBodyWriter(t *testing.T) {
	prog := arcLoad(t, arcVarsConf("arc"))
	ctx := context.Background()
	for _, tc := range []struct {
		msg  string
		want acl.Verb
	}{{arcPlainMessage, acl.Accept}, {string(arcFixture(t)), acl.Defer}} {
		txn := acl.NewTxn(&acl.Conn{ClientIP: netip.MustParseAddr(arcClientIP)}, &acl.Services{DNS: arcZone(t)})
		txn.HasSender = true
		txn.Headers, _ = arcSplit([]byte(tc.msg))
		if res := prog.Run(ctx, acl.Data, txn); res.Verb != tc.want {
			t.Errorf("%s (%v), want %s", res.Verb, res.Err, tc.want)
		} else if tc.want == acl.Defer && !strings.Contains(res.Err.Error(), "body was not seen") {
			t.Errorf("error %v", res.Err)
		}
		// Nothing validated, nothing claimed in Authentication-Results.
		if ar, ok := arcAuthResult(txn); ok {
			t.Errorf("A-R without the body writer: %+v", ar)
		}
	}
}

func TestARCExpandedList(t *testing.T) {
	conf := `acl_smtp_data = data
begin acl
data:
  warn set acl_m_ok = pass
  accept verify = arc/$acl_m_ok
  deny
`
	prog := arcLoad(t, conf)
	if _, res := arcMessageTxn(t, prog, arcZone(t), arcFixture(t)); res.Verb != acl.Accept {
		t.Errorf("%s %v", res.Verb, res.Err)
	}
	if _, res := arcMessageTxn(t, prog, arcZone(t), []byte(arcPlainMessage)); res.Verb != acl.Deny {
		t.Errorf("%s %v", res.Verb, res.Err)
	}
	bad := strings.Replace(conf, "= pass", "= passs", 1)
	prog = arcLoad(t, bad)
	if _, res := arcMessageTxn(t, prog, arcZone(t), arcFixture(t)); res.Verb != acl.Defer || !strings.Contains(res.Err.Error(), `unknown result "passs"`) {
		t.Errorf("%s %v", res.Verb, res.Err)
	}
}

func TestARCVerifyLoadErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"acl_smtp_data = d\nbegin acl\nd:\n  accept verify = sender\n",
			`test.conf:4:19: verify = sender is not supported: sidecar has only verify = arc[/LIST]`},
		{"acl_smtp_data = d\nbegin acl\nd:\n  accept verify = recipient/callout=30s\n",
			`verify = recipient is not supported`},
		{"acl_smtp_data = d\nbegin acl\nd:\n  accept verify = arcc\n",
			`verify = arcc is not supported: sidecar has only verify = arc[/LIST] (ARC chain validation, RFC 8617; for example verify = arc/pass:none): did you mean "arc"?`},
		{"acl_smtp_data = d\nbegin acl\nd:\n  accept verify = arc/pass:passs\n",
			`test.conf:4:28: verify = arc: unknown result "passs": expected one of pass, fail, none: did you mean "pass"?`},
		{"acl_smtp_data = d\nbegin acl\nd:\n  warn set acl_m_x = arc\n  accept verify = $acl_m_x\n",
			`verify: the kind must be written as it is`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept verify = arc\n",
			`condition "verify" cannot be used in ACL "r", which runs at RCPT`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept logwrite = $arc_state\n",
			`variable $arc_state cannot be used in ACL "r"`},
	} {
		_, err := arcTryLoad(tc.conf)
		if err == nil {
			t.Errorf("%q: loaded", tc.conf)
			continue
		}
		if got := config.AsList(err).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.conf, got, tc.want)
		}
	}
}

// writeKey writes a PEM key file and returns its path.
func arcWriteKey(t testing.TB, dir, name string, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// arcSealer is a key for sealing, its key file and its key record.
type arcSealer struct {
	domain, selector, path string
	key                    ed25519.PrivateKey
}

func newARCSealer(t testing.TB, domain, selector string) arcSealer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := arcWriteKey(t, t.TempDir(), "arc.key", "PRIVATE KEY", der)
	return arcSealer{domain: domain, selector: selector, path: path, key: priv}
}

func (s arcSealer) publish(z *dnstest.Zone) {
	pub := s.key.Public().(ed25519.PublicKey)
	z.AddRecord(resolver.Record{Name: s.selector + "._domainkey." + s.domain, Type: resolver.TypeTXT,
		TXT: []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}})
}

func (s arcSealer) conf() string {
	return "arc_sign = " + s.domain + " : " + s.selector + " : " + s.path + "\n"
}

// arcSealedMessage is the message as the MTA writes it after the milter's
// header edits: the :at_start: headers on top, in order, above the
// original header.
func arcSealedMessage(txn *acl.Txn, msg []byte) []byte {
	var b bytes.Buffer
	for _, h := range txn.AddHeaders {
		if h.AtStart && h.Text != "" {
			b.WriteString(h.Text + "\r\n")
		}
	}
	b.Write(msg)
	return b.Bytes()
}

// arcHeaderNames lists the names of the header fields added on top.
func arcHeaderNames(txn *acl.Txn) []string {
	var out []string
	for _, h := range txn.AddHeaders {
		if h.Text != "" {
			name, _, _ := strings.Cut(h.Text, ":")
			out = append(out, name)
		}
	}
	return out
}

func arcValidate(t testing.TB, dns resolver.Querier, msg []byte) *arc.Chain {
	t.Helper()
	v := &arc.Validator{DNS: dns}
	c, err := v.Validate(context.Background(), bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestARCSealAndValidateAtNextHop(t *testing.T) {
	zone := arcZone(t)
	sealer := newARCSealer(t, "relay.example", "arc3")
	sealer.publish(zone)
	// The forwarder: validates the fixture's chain (pass), accepts, seals.
	forwarder := arcLoad(t, sealer.conf()+`acl_smtp_data = data
begin acl
data:
  accept verify = arc
`)
	fixture := arcFixture(t)
	txn, res := arcMessageTxn(t, forwarder, zone, fixture)
	if res.Verb != acl.Accept {
		t.Fatalf("%s %v\n%s", res.Verb, res.Err, arcLogText(txn))
	}
	if got := strings.Join(arcHeaderNames(txn), ","); got != "ARC-Seal,ARC-Message-Signature,ARC-Authentication-Results" {
		t.Fatalf("added headers %s\n%s", got, arcLogText(txn))
	}
	seal, ams, aar := txn.AddHeaders[0].Text, txn.AddHeaders[1].Text, txn.AddHeaders[2].Text
	for _, want := range []string{"i=3", "cv=pass", "d=relay.example", "s=arc3", "a=ed25519-sha256"} {
		if !strings.Contains(seal, want) {
			t.Errorf("ARC-Seal lacks %s:\n%s", want, seal)
		}
	}
	if !strings.Contains(ams, "c=relaxed/relaxed") || !strings.Contains(ams, "h=from:subject:date:to:message-id:mime-version:") {
		t.Errorf("ARC-Message-Signature:\n%s", ams)
	}
	// The AAR copies our Authentication-Results: every result of the
	// DATA hooks, in order, the arc result last.
	flat := strings.Join(strings.Fields(aar), " ")
	if !strings.HasPrefix(flat, "ARC-Authentication-Results: i=3; mx.example.net; spf=none ") ||
		!strings.HasSuffix(flat, "; arc=pass (i=2) header.oldest-pass=1 smtp.remote-ip=192.0.2.25") {
		t.Errorf("AAR: %s", flat)
	}
	for _, r := range txn.AuthResults {
		if !strings.Contains(flat, "; "+r.Method+"="+r.Result) {
			t.Errorf("AAR lacks %s=%s: %s", r.Method, r.Result, flat)
		}
	}
	want := strings.Join(strings.Fields(arcAARPayload("mx.example.net", txn.AuthResults, nil, netip.Addr{})), " ")
	if flat != "ARC-Authentication-Results: i=3; "+want {
		t.Errorf("AAR: %s\nwant %s", flat, want)
	}

	sealed := arcSealedMessage(txn, fixture)
	c := arcValidate(t, zone, sealed)
	if c.State != arc.Pass || len(c.Instances) != 3 || c.OldestPass != 1 || c.DomainList() != "lists.example:forward.example:relay.example" {
		t.Fatalf("at the next hop: %s (%s) %d instances, oldest %d, %s", c.State, c.Reason, len(c.Instances), c.OldestPass, c.DomainList())
	}

	// The next hop is a second sidecar Program, validating through the
	// ACL, variables and Authentication-Results.
	next := arcLoad(t, arcVarsConf("arc/pass"))
	txn2, res := arcMessageTxn(t, next, zone, sealed)
	if res.Verb != acl.Accept {
		t.Fatalf("next hop: %s %v\n%s", res.Verb, res.Err, arcLogText(txn2))
	}
	if got := arcLogText(txn2); !strings.Contains(got, "state=pass reason= domains=lists.example:forward.example:relay.example oldest=1") {
		t.Errorf("next hop variables: %s", got)
	}
	if ar, _ := arcAuthResult(txn2); ar.Result != "pass" || ar.Props[0].Value != "1" {
		t.Errorf("next hop A-R %+v", ar)
	}
	if len(txn2.AddHeaders) != 0 {
		t.Errorf("the next hop does not seal, but added %v", arcHeaderNames(txn2))
	}
}

func TestARCSealNoneAndFail(t *testing.T) {
	zone := arcZone(t)
	sealer := newARCSealer(t, "relay.example", "arc3")
	sealer.publish(zone)
	prog := arcLoad(t, sealer.conf())

	// A message without a chain gets instance 1, cv=none.
	txn, _ := arcMessageTxn(t, prog, zone, []byte(arcPlainMessage))
	if len(txn.AddHeaders) != 3 || !strings.Contains(txn.AddHeaders[0].Text, "cv=none") || !strings.Contains(txn.AddHeaders[0].Text, "i=1") {
		t.Fatalf("seal of a plain message: %v\n%s", txn.AddHeaders, arcLogText(txn))
	}
	if c := arcValidate(t, zone, arcSealedMessage(txn, []byte(arcPlainMessage))); c.State != arc.Pass || c.OldestPass != 1 {
		t.Errorf("plain message sealed: %s %s", c.State, c.Reason)
	}
	if !strings.Contains(txn.AddHeaders[2].Text, "arc=none") {
		t.Errorf("AAR %s", txn.AddHeaders[2].Text)
	}

	// A broken chain is sealed with cv=fail, and stays failed.
	tampered := bytes.Replace(arcFixture(t), []byte("the figures are attached"), []byte("the figures are detached"), 1)
	txn, _ = arcMessageTxn(t, prog, zone, tampered)
	if len(txn.AddHeaders) != 3 || !strings.Contains(txn.AddHeaders[0].Text, "cv=fail") {
		t.Fatalf("seal of a broken chain: %v\n%s", arcHeaderNames(txn), arcLogText(txn))
	}
	sealed := arcSealedMessage(txn, tampered)
	if c := arcValidate(t, zone, sealed); c.State != arc.Fail {
		t.Errorf("broken chain sealed: %s", c.State)
	}
	// A chain whose newest seal says cv=fail gets no further set.
	txn, _ = arcMessageTxn(t, prog, zone, sealed)
	if len(txn.AddHeaders) != 0 {
		t.Errorf("sealed a dead chain: %v", arcHeaderNames(txn))
	}
}

func TestARCNoSealOnTemporaryFailure(t *testing.T) {
	zone := arcZone(t)
	zone.SetFault("arc2._domainkey.forward.example", resolver.TypeTXT, dnstest.ServFail)
	sealer := newARCSealer(t, "relay.example", "arc3")
	prog := arcLoad(t, sealer.conf())
	txn, res := arcMessageTxn(t, prog, zone, arcFixture(t))
	if res.Verb != acl.Accept {
		t.Fatal(res)
	}
	if len(txn.AddHeaders) != 0 {
		t.Errorf("sealed on a temporary DNS failure: %v", arcHeaderNames(txn))
	}
	if !strings.Contains(arcLogText(txn), "error: ARC: not sealing: temporary DNS failure") {
		t.Errorf("logs: %s", arcLogText(txn))
	}
}

func TestARCNoSealControl(t *testing.T) {
	zone := arcZone(t)
	sealer := newARCSealer(t, "relay.example", "arc3")
	for _, tc := range []struct {
		acls string
		seal bool
	}{
		{"acl_smtp_data = data\nbegin acl\ndata:\n  accept control = no_arc_sign\n", false},
		{"acl_smtp_rcpt = rcpt\nbegin acl\nrcpt:\n  accept control = no_arc_sign\n", false},
		{"acl_smtp_data = data\nbegin acl\ndata:\n  warn add_header = :at_start:X-Before: 1\n  accept hosts = 198.51.100.0/24\n         control = no_arc_sign\n  accept\n", true},
		{"acl_smtp_data = data\nbegin acl\ndata:\n  warn add_header = X-Test: 1\n  deny control = no_arc_sign\n", false},
	} {
		prog := arcLoad(t, sealer.conf()+tc.acls)
		conn := &acl.Conn{ClientIP: netip.MustParseAddr(arcClientIP)}
		txn := acl.NewTxn(conn, &acl.Services{DNS: zone, AuthservID: "mx.example.net"})
		ctx := context.Background()
		prog.Run(ctx, acl.Mail, txn)
		prog.Run(ctx, acl.Rcpt, txn)
		txn.Headers, _ = arcSplit([]byte(arcPlainMessage))
		_, body := arcSplit([]byte(arcPlainMessage))
		w := ARCBodyHook(txn)
		w.Write(body)
		w.End()
		prog.Run(ctx, acl.Data, txn)
		names := arcHeaderNames(txn)
		if sealed := arcContains(names, "ARC-Seal"); sealed != tc.seal {
			t.Errorf("%q: headers %v, want sealed %v", tc.acls, names, tc.seal)
		}
	}
}

func TestARCSignLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notKey := filepath.Join(dir, "notakey.pem")
	os.WriteFile(notKey, []byte("hello\n"), 0o600)
	ecKey := arcWriteKey(t, dir, "ec.pem", "EC PRIVATE KEY", []byte{1, 2, 3})
	good := newARCSealer(t, "relay.example", "arc3").path
	for _, tc := range []struct{ conf, want string }{
		{"arc_sign = relay.example : arc3 : " + dir + "/missing.pem\n",
			"test.conf:1:35: arc_sign: cannot read the key file: open " + dir + "/missing.pem: no such file or directory"},
		{"arc_sign = relay.example : arc3 : " + notKey + "\n",
			"test.conf:1:35: arc_sign: " + notKey + " is not a usable signing key"},
		{"arc_sign = relay.example : arc3 : " + ecKey + "\n",
			`unsupported PEM block "EC PRIVATE KEY"`},
		{"arc_sign = relay.example : " + good + "\n",
			"test.conf:1:12: arc_sign needs DOMAIN : SELECTOR : KEYFILE, not 2 items (for example: arc_sign = example.net : arc2025 : /etc/sidecar/arc.key)"},
		{"arc_sign = relay..example : arc3 : " + good + "\n",
			`test.conf:1:12: arc_sign: "relay..example" is not a valid domain`},
		{"arc_sign = relay.example : arc 3 : " + good + "\n",
			`test.conf:1:28: arc_sign: "arc 3" is not a valid selector`},
		{"arc_sign = relay.example : arc3 : " + good + "\narc_sign_headers = from : subject : arc-seal\n",
			"test.conf:2:37: arc_sign_headers: ARC-Seal cannot be covered"},
		{"arc_sign_headers = from : Authentication-Results\n",
			"test.conf:1:27: arc_sign_headers: Authentication-Results must not be signed"},
		{"arc_sign_headers = from : bad name\n",
			`test.conf:1:27: arc_sign_headers: "bad name" is not a header field name`},
	} {
		_, err := arcTryLoad(tc.conf)
		if err == nil {
			t.Errorf("%q: loaded", tc.conf)
			continue
		}
		if got := config.AsList(err).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.conf, got, tc.want)
		}
	}
}

func TestARCSignRSAAndHeaders(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := arcWriteKey(t, t.TempDir(), "rsa.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	zone := arcZone(t)
	zone.AddRecord(resolver.Record{Name: "rsa._domainkey.relay.example", Type: resolver.TypeTXT, TXT: []string{rec[:255], rec[255:]}})
	prog := arcLoad(t, "arc_sign = relay.example : rsa : "+path+"\narc_sign_headers = From : +Subject : X-Custom\n")
	msg := []byte("X-Custom: 1\r\n" + arcPlainMessage)
	txn, _ := arcMessageTxn(t, prog, zone, msg)
	if len(txn.AddHeaders) != 3 {
		t.Fatalf("no seal: %s", arcLogText(txn))
	}
	ams := strings.Join(strings.Fields(txn.AddHeaders[1].Text), " ")
	if !strings.Contains(ams, "a=rsa-sha256") || !strings.Contains(ams, "h=from:subject:subject:x-custom;") {
		t.Errorf("AMS %s", ams)
	}
	sealed := arcSealedMessage(txn, msg)
	if c := arcValidate(t, zone, sealed); c.State != arc.Pass {
		t.Errorf("RSA seal: %s %s", c.State, c.Reason)
	}
	// The oversigned Subject: another one added later breaks the AMS.
	if c := arcValidate(t, zone, append([]byte("Subject: changed\r\n"), sealed...)); c.State != arc.Fail {
		t.Errorf("oversigned field added: %s", c.State)
	}
}

func TestARCBodyMemoryIsBounded(t *testing.T) {
	zone := arcZone(t)
	sealer := newARCSealer(t, "relay.example", "arc3")
	prog := arcLoad(t, sealer.conf())
	txn := acl.NewTxn(&acl.Conn{}, &acl.Services{DNS: zone})
	prog.Run(context.Background(), acl.Mail, txn)
	txn.Headers, _ = arcSplit(arcFixture(t))
	w := ARCBodyHook(txn)
	chunk := bytes.Repeat([]byte("0123456789 abcdefghij  \r\n"), 64<<10/25)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const total = 32 << 20
	for n := 0; n < total; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.End()
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("streaming %d MiB allocated %d bytes", total>>20, grew)
	}
}

func TestARCAARPayloadQuoting(t *testing.T) {
	got := arcAARPayload("mx example", []acl.AuthResult{
		{Method: "spf", Result: "fail", Reason: `say "no"`, Props: []acl.AuthProp{{Type: "smtp", Name: "mailfrom", Value: "a b@example.com"}}},
		{Method: "dkim", Result: "pass", Props: []acl.AuthProp{{Type: "header", Name: "i", Value: "@example.com"}, {Type: "bad type", Name: "x", Value: "y"}}},
		{Method: "bad method", Result: "pass"},
	}, &arc.Chain{State: arc.None}, netip.Addr{})
	want := `"mx example"; spf=fail reason="say \"no\"" smtp.mailfrom="a b@example.com"; dkim=pass header.i=@example.com; arc=none`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestARCTrustedDMARCPass(t *testing.T) {
	zone := arcZone(t)
	list := newARCSealer(t, "lists.example", "l1")
	fwd := newARCSealer(t, "forward.example", "f1")
	list.publish(zone)
	fwd.publish(zone)
	seal := func(msg []byte, s arcSealer, aar string) []byte {
		t.Helper()
		v := &arc.Validator{DNS: zone}
		c, err := v.Validate(context.Background(), bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		signer := &arc.Signer{Domain: s.domain, Selector: s.selector, Key: s.key}
		hs, err := signer.Seal(msg, c, aar)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(strings.Join(hs, "\r\n")+"\r\n"), msg...)
	}
	plain := []byte(arcPlainMessage)
	listPass := seal(plain, list, "lists.example; spf=fail smtp.mailfrom=origin.example;\r\n\tdkim=pass (good) header.d=origin.example; dmarc=pass (p=reject dis=none) header.from=origin.example")
	listFail := seal(plain, list, "lists.example; dmarc=fail header.from=origin.example")
	listOther := seal(plain, list, "lists.example; dmarc=pass header.from=other.example")
	listThenFwd := seal(listPass, fwd, "forward.example; arc=pass; dmarc=fail header.from=origin.example")
	fwdThenList := seal(seal(plain, fwd, "forward.example; dmarc=pass header.from=origin.example"), list, "lists.example; dmarc=fail header.from=origin.example")
	broken := bytes.Replace(listPass, []byte("Hi Bob."), []byte("Hi Eve."), 1)

	trust := func(names ...string) func(string) (bool, error) {
		return func(d string) (bool, error) { return arcContains(names, d), nil }
	}
	prog := arcLoad(t, "")
	for _, tc := range []struct {
		name    string
		msg     []byte
		trusted func(string) (bool, error)
		want    int // the instance that vouches; 0: no override
	}{
		{"trusted list saw dmarc=pass", listPass, trust("lists.example"), 1},
		{"untrusted list", listPass, trust("forward.example"), 0},
		{"trusted list saw dmarc=fail", listFail, trust("lists.example"), 0},
		{"pass for another From domain", listOther, trust("lists.example"), 0},
		{"untrusted sealer after the trusted one", listThenFwd, trust("lists.example"), 0},
		{"both trusted", listThenFwd, trust("lists.example", "forward.example"), 1},
		{"the earliest trusted AAR decides", fwdThenList, trust("lists.example", "forward.example"), 1},
		{"the earliest trusted is the list: fail", fwdThenList, trust("lists.example"), 0},
		{"chain fails", broken, trust("lists.example"), 0},
		{"no chain", plain, trust("lists.example"), 0},
	} {
		txn, _ := arcMessageTxn(t, prog, zone, tc.msg)
		ov, ok, err := ARCTrustedDMARCPass(context.Background(), txn, "origin.example", tc.trusted)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := map[bool]int{true: ov.Instance, false: 0}[ok]; got != tc.want {
			t.Errorf("%s: override by instance %d (%+v), want %d", tc.name, got, ov, tc.want)
		}
	}
	// A temporary DNS failure overrides nothing.
	zone.SetFault("l1._domainkey.lists.example", resolver.TypeTXT, dnstest.ServFail)
	txn, _ := arcMessageTxn(t, prog, zone, listPass)
	if _, ok, _ := ARCTrustedDMARCPass(context.Background(), txn, "origin.example", trust("lists.example")); ok {
		t.Error("override on a temporary DNS failure")
	}
}
