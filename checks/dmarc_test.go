package checks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// dmarcZone is authZone plus the names the DMARC scenarios need.
func dmarcZone() *dnstest.Zone {
	z := authZone()
	addTXT(z, "mail.sender.example", "v=spf1 ip4:192.0.2.0/24 -all")
	addTXT(z, "mail.strict.example", "v=spf1 ip4:192.0.2.0/24 -all")
	addTXT(z, "bounce.other.example", "v=spf1 ip4:192.0.2.0/24 -all")
	z.Add("exists.quar.example. 300 IN A 192.0.2.1")
	addTXT(z, "_dmarc.np.example", "v=DMARC1; p=quarantine; sp=quarantine; np=reject")
	z.Add("np.example. 300 IN A 192.0.2.1")
	z.Add("real.np.example. 300 IN A 192.0.2.1")
	addTXT(z, "_dmarc.temp.example", "v=DMARC1; p=reject")
	z.SetFault("_dmarc.temp.example", resolver.TypeTXT, dnstest.ServFail)
	addTXT(z, "_dmarc.multi.example", "v=DMARC1; p=reject")
	addTXT(z, "_dmarc.multi.example", "v=DMARC1; p=none")
	addTXT(z, "_dmarc.test.example", "v=DMARC1; p=reject; t=y")
	return z
}

type dmarcScenario struct {
	name   string
	conf   string // prepended to varsACL
	d      delivery
	status string // $dmarc_status
	ar     string // the dmarc A-R entry; "" for none
	vars   string // more of the DMARC log line, when checked
}

func TestDMARCScenarios(t *testing.T) {
	rk, _ := testKeys()
	signed := func(from, d string) string {
		return signMessage(t, plainMessage(from, 500), d, "rsa", rk, nil)
	}
	in := func(ip, helo, sender, msg string) delivery {
		return delivery{ip: ip, helo: helo, sender: sender, rcpts: []string{"bob@example.org"}, msg: msg}
	}
	good, bad := "192.0.2.5", "203.0.113.9"
	tests := []dmarcScenario{
		{name: "aligned DKIM pass, SPF fail",
			d:      in(bad, "x", "alice@sender.example", signed("alice@sender.example", "sender.example")),
			status: "accept", ar: "dmarc=pass (p=reject dis=none) header.from=sender.example",
			vars: "accept|sender.example|reject|no|yes|"},
		{name: "aligned SPF pass, unsigned",
			d:      in(good, "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "accept", ar: "dmarc=pass (p=reject dis=none) header.from=sender.example",
			vars: "accept|sender.example|reject|yes|no|"},
		{name: "relaxed SPF alignment of a subdomain",
			d:      in(good, "x", "bounce@mail.sender.example", plainMessage("alice@sender.example", 10)),
			status: "accept", ar: "dmarc=pass (p=reject dis=none) header.from=sender.example"},
		{name: "spoof of a p=reject domain",
			d:      in(bad, "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "reject", ar: "dmarc=fail (p=reject dis=none) header.from=sender.example policy.dmarc=reject",
			vars: "reject|sender.example|reject|no|no|"},
		{name: "third-party signature and SPF only",
			d:      in(good, "x", "bounce@bounce.other.example", signed("alice@sender.example", "third.example")),
			status: "reject", ar: "dmarc=fail (p=reject dis=none) header.from=sender.example policy.dmarc=reject"},
		{name: "p=quarantine failure",
			d:      in(bad, "x", "alice@quar.example", plainMessage("alice@quar.example", 10)),
			status: "quarantine", ar: "dmarc=fail (p=quarantine dis=none) header.from=quar.example policy.dmarc=quarantine"},
		{name: "existing subdomain takes sp=",
			d:      in(bad, "x", "alice@exists.quar.example", plainMessage("alice@exists.quar.example", 10)),
			status: "none", ar: "dmarc=fail (p=none dis=none) header.from=exists.quar.example policy.dmarc=none",
			vars: "none|quar.example|none|"},
		{name: "non-existent subdomain takes np=",
			d:      in(bad, "x", "alice@ghost.np.example", plainMessage("alice@ghost.np.example", 10)),
			status: "reject", ar: "dmarc=fail (p=reject dis=none) header.from=ghost.np.example policy.dmarc=reject"},
		{name: "existing subdomain of an np= domain takes sp=",
			d:      in(bad, "x", "alice@real.np.example", plainMessage("alice@real.np.example", 10)),
			status: "quarantine", ar: "dmarc=fail (p=quarantine dis=none) header.from=real.np.example policy.dmarc=quarantine"},
		{name: "p=none failure",
			d:      in(bad, "x", "alice@none.example", plainMessage("alice@none.example", 10)),
			status: "none", ar: "dmarc=fail (p=none dis=none) header.from=none.example policy.dmarc=none"},
		{name: "t=y lowers reject to quarantine",
			d:      in(bad, "x", "alice@test.example", plainMessage("alice@test.example", 10)),
			status: "quarantine", ar: "dmarc=fail (p=reject dis=none) header.from=test.example policy.dmarc=quarantine"},
		{name: "no record",
			d:      in(good, "x", "alice@norec.example", plainMessage("alice@norec.example", 10)),
			status: "norecord", ar: "dmarc=none header.from=norec.example", vars: "norecord|norec.example||"},
		{name: "several records are no policy",
			d:      in(bad, "x", "alice@multi.example", plainMessage("alice@multi.example", 10)),
			status: "norecord", ar: "dmarc=none header.from=multi.example"},
		{name: "strict alignment refuses a subdomain",
			d:      in(good, "x", "bounce@mail.strict.example", plainMessage("alice@strict.example", 10)),
			status: "reject", ar: "dmarc=fail (p=reject dis=none) header.from=strict.example policy.dmarc=reject"},
		{name: "DNS failure",
			d:      in(good, "x", "alice@temp.example", plainMessage("alice@temp.example", 10)),
			status: "temperror", ar: "dmarc=temperror header.from=temp.example"},
		{name: "no From",
			d:      in(good, "x", "alice@sender.example", "To: bob@example.org\r\nSubject: x\r\n\r\nhi\r\n"),
			status: "nofrom", ar: "dmarc=permerror (no From header field)", vars: "nofrom|||no|no|"},
		{name: "several From fields",
			d: in(good, "x", "alice@sender.example",
				"From: alice@sender.example\r\nFrom: eve@evil.example\r\nSubject: x\r\n\r\nhi\r\n"),
			status: "nofrom", ar: "dmarc=permerror (several From header fields)"},
		{name: "From with mailboxes of two domains",
			d: in(good, "x", "alice@sender.example",
				"From: alice@sender.example, eve@evil.example\r\nSubject: x\r\n\r\nhi\r\n"),
			status: "nofrom", ar: "dmarc=permerror (mailboxes of several domains in the From header field)"},
		{name: "null sender: the HELO identity aligns",
			d:      in(good, "mail.sender.example", "", plainMessage("alice@sender.example", 10)),
			status: "accept", ar: "dmarc=pass (p=reject dis=none) header.from=sender.example"},
		{name: "authenticated client: off",
			d: delivery{ip: bad, helo: "x", sender: "alice@sender.example", authID: "alice", rcpts: []string{"bob@example.org"},
				msg: plainMessage("alice@sender.example", 10)},
			status: "off", vars: "off|||no|no|DMARC not checked for an authenticated client"},
		{name: "local submission: off",
			d:      in("", "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "off"},
		{name: "control = dmarc_disable_verify at RCPT",
			conf:   "acl_smtp_rcpt = r\n",
			d:      in(bad, "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "off", vars: "off|||no|no|DMARC verification disabled (control = dmarc_disable_verify)"},
		{name: "control = dmarc_disable_verify at CONNECT lasts for the connection",
			conf:   "acl_smtp_connect = c\n",
			d:      in(bad, "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "off"},
		{name: "a message held by control = quarantine says dis=quarantine",
			conf:   "acl_smtp_rcpt = q\n",
			d:      in(bad, "x", "alice@quar.example", plainMessage("alice@quar.example", 10)),
			status: "quarantine", ar: "dmarc=fail (p=quarantine dis=quarantine) header.from=quar.example policy.dmarc=quarantine"},
		{name: "dmarc_authres = false: evaluated on use, not reported",
			conf:   "dmarc_authres = false\n",
			d:      in(bad, "x", "alice@sender.example", plainMessage("alice@sender.example", 10)),
			status: "reject"},
		{name: "U-label From domain",
			d:      in(bad, "x", "alice@sender.example", "From: alice@bücher.example\r\nSubject: x\r\n\r\nhi\r\n"),
			status: "norecord", ar: "dmarc=none header.from=xn--bcher-kva.example"},
	}
	extra := "r:\n  warn control = dmarc_disable_verify\n  accept\nc:\n  warn control = dmarc_disable_verify\n  accept\n" +
		"q:\n  warn control = quarantine/held\n  accept\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, tt.conf+varsACL+extra)
			res, txn := deliver(t, p, svcFor(dmarcZone()), tt.d)
			if res.Verb != acl.Accept {
				t.Fatalf("verdict %s %v", res.Verb, res.Err)
			}
			logs := strings.Join(logsOf(txn), "\n")
			if !strings.Contains(logs, "log_message: DMARC "+tt.status+"|") {
				t.Errorf("status: logs\n%s\nwant %s", logs, tt.status)
			}
			if tt.vars != "" && !strings.Contains(logs, "log_message: DMARC "+tt.vars) {
				t.Errorf("variables: logs\n%s\nwant %q", logs, tt.vars)
			}
			var got string
			for _, l := range strings.Split(authResults(txn), "\n") {
				if strings.HasPrefix(l, "dmarc=") {
					got = l
				}
			}
			if got != tt.ar {
				t.Errorf("A-R %q, want %q", got, tt.ar)
			}
		})
	}
}

// The dmarc_status condition: words left to right with "!", unknown words
// and stages refused at load time.
func TestDMARCStatusCondition(t *testing.T) {
	conf := `acl_smtp_data = d
begin acl
d:
  deny    dmarc_status = !accept : none
          message = not accepted: $dmarc_status
  accept
`
	p := load(t, conf)
	z := dmarcZone()
	spoof := delivery{ip: "203.0.113.9", helo: "x", sender: "alice@sender.example", rcpts: []string{"bob@example.org"},
		msg: plainMessage("alice@sender.example", 10)}
	if res, _ := deliver(t, p, svcFor(z), spoof); res.Verb != acl.Deny || res.Message != "not accepted: reject" {
		t.Errorf("spoof: %s %q", res.Verb, res.Message)
	}
	ok := spoof
	ok.ip = "192.0.2.5"
	if res, _ := deliver(t, p, svcFor(z), ok); res.Verb != acl.Accept {
		t.Errorf("pass: %s %q", res.Verb, res.Message)
	}
	for _, bad := range []struct{ text, want string }{
		{"acl_smtp_data = d\nbegin acl\nd:\n  deny dmarc_status = acept\n", `unknown result "acept"`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  deny dmarc_status = reject\n", "dmarc_status"},
		{"acl_smtp_data = d\nbegin acl\nd:\n  warn control = dmarc_disable_verify\n", `control "dmarc_disable_verify" cannot be used`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  warn log_message = $dmarc_status\n", "dmarc_status"},
	} {
		_, err := tryLoad(t, bad.text)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.text, err, bad.want)
		}
	}
}

// DMARC is evaluated once per message however often it is used.
func TestDMARCEvaluatedOnce(t *testing.T) {
	conf := `acl_smtp_data = d
begin acl
d:
  warn dmarc_status = reject
  warn dmarc_status = accept
  warn log_message = $dmarc_status $dmarc_used_domain $dmarc_ar_header
  accept
`
	z := dmarcZone()
	deliver(t, load(t, conf), svcFor(z), delivery{ip: "203.0.113.9", helo: "x", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: plainMessage("alice@sender.example", 10)})
	n := 0
	for _, q := range z.Queries() {
		if strings.HasPrefix(q.Name, "_dmarc.") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d DMARC record queries, want 1: %v", n, z.Queries())
	}
}

// dmarc_discovery = psl with a dmarc_tld_file: the list decides the
// Organizational Domain, where the tree walk needs none.
func TestDMARCDiscoveryPSL(t *testing.T) {
	dir := t.TempDir()
	tld := filepath.Join(dir, "psl.dat")
	if err := os.WriteFile(tld, []byte("// test list\nexample\n// a private suffix\nsender.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := delivery{ip: "203.0.113.9", helo: "x", sender: "alice@x.sender.example", rcpts: []string{"bob@example.org"},
		msg: plainMessage("alice@x.sender.example", 10)}
	_, txn := deliver(t, load(t, varsACL), svcFor(dmarcZone()), d)
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "DMARC reject|sender.example|reject|") {
		t.Errorf("tree walk: %s", logs)
	}
	_, txn = deliver(t, load(t, "dmarc_discovery = psl\ndmarc_tld_file = "+tld+"\n"+varsACL), svcFor(dmarcZone()), d)
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "DMARC norecord|x.sender.example||") {
		t.Errorf("psl with sender.example a public suffix: %s", logs)
	}
	_, txn = deliver(t, load(t, "dmarc_discovery = psl\n"+varsACL), svcFor(dmarcZone()), d)
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "DMARC reject|sender.example|reject|") {
		t.Errorf("psl, embedded list: %s", logs)
	}

	// A missing or empty list is a configuration error at the option.
	empty := filepath.Join(dir, "empty.dat")
	os.WriteFile(empty, []byte("// nothing\n"), 0o644)
	for _, path := range []string{filepath.Join(dir, "missing.dat"), empty} {
		_, err := tryLoad(t, "dmarc_discovery = psl\ndmarc_tld_file = "+path+"\n")
		list := config.AsList(err)
		if len(list.Errors()) != 1 || list.Errors()[0].Pos.Line != 2 || !strings.Contains(list.Errors()[0].Msg, "dmarc_tld_file") {
			t.Errorf("%s: %v", path, err)
		}
	}
	// With the tree walk, a list is only warned about.
	if w := loadWarnings(t, "dmarc_tld_file = "+tld+"\n"); len(w) != 1 || !strings.Contains(w[0].Msg, "only used with dmarc_discovery = psl") {
		t.Errorf("warnings: %v", w)
	}
	if _, err := tryLoad(t, "dmarc_discovery = orgdomain\n"); err == nil {
		t.Error("bad dmarc_discovery accepted")
	}
}

// loadWarnings compiles text, which must be valid, and returns its
// warnings.
func loadWarnings(t *testing.T, text string) config.ErrorList {
	t.Helper()
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	reg := acl.NewRegistry()
	Register(reg)
	if _, err := acl.Compile(cfg, reg); err != nil {
		t.Fatal(err)
	}
	return cfg.Reporter.List.Warnings()
}

// The seed's "Example usage" (001_48bb758177c472e2.txt, DMARC section), as
// written, with the real conditions, variables and controls: the text of
// acl/seed_test.go.
var seedDMARC = readSeed("../testdata/seed-dmarc-example.conf")

// showVars is appended to the seed text to read its acl_m variables.
const showVars = `
show_vars:
  warn    logwrite = VARS quarantine=$acl_m_quarantine list=$acl_m_mailing_list
  accept
`

func seedDelivery(t testing.TB, ip, from string, signed bool) delivery {
	msg := plainMessage(from, 300)
	if signed {
		rk, _ := testKeys()
		msg = signMessage(t, msg, domainOf(from), "rsa", rk, nil)
	}
	return delivery{ip: ip, helo: "mail.client.example", sender: from, rcpts: []string{"bob@example.org"}, msg: msg, queueID: "4Q1"}
}

func TestSeedDMARCExampleEndToEnd(t *testing.T) {
	p := load(t, seedDMARC+showVars)
	z := dmarcZone()
	tests := []struct {
		name       string
		d          delivery
		verb       acl.Verb
		message    string
		logs       []string
		header     string // the added header, when one is
		quarantine string
	}{
		{name: "signed, aligned: accept", d: seedDelivery(t, "203.0.113.9", "alice@sender.example", true), verb: acl.Accept,
			logs:   []string{"DMARC DEBUG: accept sender.example"},
			header: "Authentication-Results: mx.example.net; dmarc=pass (p=reject dis=none) header.from=sender.example"},
		{name: "spoof of p=reject: deny with the seed's message", d: seedDelivery(t, "203.0.113.9", "alice@sender.example", false),
			verb: acl.Deny, message: "Message from sender.example failed sender's DMARC policy, REJECT",
			logs: []string{"DMARC DEBUG: 'reject' for sender.example"}},
		{name: "spoof of p=quarantine: flagged", d: seedDelivery(t, "203.0.113.9", "alice@quar.example", false), verb: acl.Accept,
			logs: []string{"DMARC DEBUG: 'quarantine' for quar.example"}, quarantine: "1"},
		{name: "spoof of p=none: annotated", d: seedDelivery(t, "203.0.113.9", "alice@none.example", false), verb: acl.Accept,
			logs:   []string{"DMARC DEBUG: none none.example", "DMARC DEBUG: 'none' for none.example"},
			header: "Authentication-Results: mx.example.net; dmarc=fail (p=none dis=none) header.from=none.example policy.dmarc=none"},
		{name: "local host to a local domain: DMARC off", d: seedDelivery(t, "127.0.0.1", "alice@sender.example", false), verb: acl.Accept,
			logs: []string{"DMARC DEBUG: off ", "DMARC DEBUG: 'off' for "}},
		{name: "authenticated spoof: the ACL lets it through", d: func() delivery {
			d := seedDelivery(t, "203.0.113.9", "alice@sender.example", false)
			d.authID = "alice"
			return d
		}(), verb: acl.Accept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, txn := deliver(t, p, svcFor(z), tt.d)
			if res.Verb != tt.verb || res.Message != tt.message {
				t.Fatalf("got %s %q (%v), want %s %q", res.Verb, res.Message, res.Err, tt.verb, tt.message)
			}
			var logs []string
			for _, l := range txn.Logs {
				if l.Kind == "log_message" && l.Stage == acl.Data {
					logs = append(logs, l.Text)
				}
			}
			if strings.Join(logs, "|") != strings.Join(tt.logs, "|") {
				t.Errorf("logs %q, want %q", logs, tt.logs)
			}
			if tt.header != "" && (len(txn.AddHeaders) != 1 || txn.AddHeaders[0].Text != tt.header) {
				t.Errorf("headers %+v, want %q", txn.AddHeaders, tt.header)
			}
			if _, ok := txn.Control("dmarc_enable_forensic"); !ok && tt.d.ip != "127.0.0.1" {
				t.Errorf("dmarc_enable_forensic not set")
			}
			txn.Logs = nil
			p.RunACL(context.Background(), "show_vars", txn)
			want := "VARS quarantine=" + tt.quarantine + " list="
			if len(txn.Logs) != 1 || txn.Logs[0].Text != want {
				t.Errorf("vars %+v, want %q", txn.Logs, want)
			}
		})
	}
}

// The seed's ACL with "control = quarantine/…" where it sets the flag: a
// p=quarantine failure is held (the milter quarantines the message).
func TestSeedDMARCExampleQuarantineControl(t *testing.T) {
	text := strings.Replace(seedDMARC, "          set $acl_m_quarantine = 1\n", "          control = quarantine/DMARC quarantine policy\n", 1)
	if text == seedDMARC {
		t.Fatal("seed text changed")
	}
	p := load(t, text)
	res, txn := deliver(t, p, svcFor(dmarcZone()), seedDelivery(t, "203.0.113.9", "alice@quar.example", false))
	if res.Verb != acl.Accept {
		t.Fatalf("verdict %s", res.Verb)
	}
	if reason, ok := txn.Control("quarantine"); !ok || reason != "DMARC quarantine policy" {
		t.Errorf("quarantine control %q %v", reason, ok)
	}
	_, txn = deliver(t, p, svcFor(dmarcZone()), seedDelivery(t, "203.0.113.9", "alice@sender.example", true))
	if _, ok := txn.Control("quarantine"); ok {
		t.Error("a DMARC pass was quarantined")
	}
}

// The seed's warning on the placeholder condition stays the only one.
func TestSeedDMARCExampleCompiles(t *testing.T) {
	p := load(t, seedDMARC)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Msg, `invalid "condition" value`) {
		t.Errorf("warnings: %v", p.Warnings)
	}
}

func TestDMARCForensicSenderVariable(t *testing.T) {
	conf := "acl_smtp_connect = c\nbegin acl\nc:\n  warn log_message = $dmarc_forensic_sender\n  accept\n"
	for _, tt := range []struct{ opt, want string }{{"", "do-not-reply@mx.example.net"}, {"dmarc_forensic_sender = dmarc@example.net\n", "dmarc@example.net"}} {
		p := load(t, tt.opt+conf)
		txn := acl.NewTxn(&acl.Conn{}, svcFor(dmarcZone()))
		p.Run(bg, acl.Connect, txn)
		if len(txn.Logs) != 1 || txn.Logs[0].Text != tt.want {
			t.Errorf("%q: %+v", tt.opt, txn.Logs)
		}
	}
}

// BenchmarkInboundAuth is the full inbound evaluation of a 10 KB message
// signed with one RSA-2048 key (relaxed/relaxed), through the Program as
// the milter runs it (every stage, the DKIM body hook, the DATA hooks):
// SPF, DKIM and DMARC, on a warm (in-memory) zone, with the seed's DMARC
// ACL. cpu-µs/op is the process's CPU time per message, all goroutines
// included.
func BenchmarkInboundAuth(b *testing.B) { benchInbound(b, true, msgdkim.CanonicalizationRelaxed) }

// BenchmarkInboundAuthSimple is the same with c=simple/simple.
func BenchmarkInboundAuthSimple(b *testing.B) { benchInbound(b, true, msgdkim.CanonicalizationSimple) }

// BenchmarkInboundAuthUnsigned is the same message unsigned: what the
// stages, SPF, DMARC and the glue cost without the DKIM cryptography.
func BenchmarkInboundAuthUnsigned(b *testing.B) { benchInbound(b, false, "") }

func benchInbound(b *testing.B, signed bool, can msgdkim.Canonicalization) {
	rk, _ := testKeys()
	msg := plainMessage("alice@sender.example", 10<<10)
	want := "dkim=none"
	if signed {
		msg = signMessage(b, msg, "sender.example", "rsa", rk, func(o *msgdkim.SignOptions) {
			o.HeaderCanonicalization, o.BodyCanonicalization = can, can
		})
		want = "dkim=pass"
	}
	p := loadTB(b, seedDMARC)
	// The daemon's path: its caching resolver, asking a DNS server on
	// loopback that serves the zone; warm after the first message.
	z := dmarcZone()
	res, err := resolver.New(resolver.Options{Servers: []string{dnstest.NewServer(b, z).Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	svc := svcFor(res)
	d := delivery{ip: "192.0.2.5", helo: "mail.sender.example", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg, queueID: "B1"}
	d.splitBody()
	first, txn := deliver(b, p, svc, d)
	// The ARC check runs for every message (its body hook and the DATA
	// step): here a message without ARC fields, arc=none.
	ar := authResults(txn)
	if first.Verb != acl.Accept || !strings.Contains(ar, want) || !strings.Contains(ar, "dmarc=pass") || !strings.Contains(ar, "arc=none") {
		b.Fatalf("%s %s", first.Verb, ar)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	before := processCPU()
	asked := len(z.Queries())
	for b.Loop() {
		deliver(b, p, svc, d)
	}
	if n := len(z.Queries()) - asked; n > 0 {
		b.Fatalf("%d DNS queries after the first message: the cache is not warm", n)
	}
	if before > 0 {
		b.ReportMetric(float64((processCPU()-before).Nanoseconds())/float64(b.N)/1000, "cpu-µs/op")
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

// dmarc_report_format = rfc7489 is for deployments that evaluate as
// RFC 7489 does: with the tree walk it is an error at the option.
func TestDMARCReportFormatNeedsPSL(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		wantErr    string // "" for none
	}{
		{"default", "dmarc_discovery = treewalk\n", ""},
		{"rfc9990 with the tree walk", "dmarc_discovery = treewalk\ndmarc_report_format = rfc9990\n", ""},
		{"rfc7489 with psl", "dmarc_discovery = psl\ndmarc_report_format = rfc7489\n", ""},
		{"rfc7489 with the tree walk", "dmarc_report_format = rfc7489\n",
			"test.conf:1:23: dmarc_report_format = rfc7489 needs dmarc_discovery = psl (RFC 7489 reports describe RFC 7489's evaluation); with the DNS tree walk write dmarc_report_format = rfc9990"},
		{"rfc7489 with an explicit tree walk", "dmarc_discovery = treewalk\n  dmarc_report_format = rfc7489\n",
			"test.conf:2:25: dmarc_report_format = rfc7489 needs dmarc_discovery = psl"},
		{"unknown format", "dmarc_report_format = rfc1234\n", "test.conf:1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryLoad(t, tc.text)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q…", err, tc.wantErr)
			}
		})
	}
}
