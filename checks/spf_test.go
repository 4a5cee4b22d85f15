package checks

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/spf"
)

func txt(name string, strs ...string) resolver.Record {
	return resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: strs}
}

func addr(name, ip string) resolver.Record {
	a := netip.MustParseAddr(ip)
	t := resolver.TypeA
	if a.Is6() {
		t = resolver.TypeAAAA
	}
	return resolver.Record{Name: name, Type: t, IP: a}
}

// testZone holds one domain per SPF result.
func testZone() *dnstest.Zone {
	z := dnstest.NewZone().AddRecord(
		txt("example.com", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all exp=why.example.com"),
		txt("why.example.com", "%{i} is not one of %{d}'s designated mail servers."),
		txt("soft.example", "v=spf1 ip4:192.0.2.0/24 ~all"),
		txt("neutral.example", "v=spf1 ?all"),
		txt("perm.example", "v=spf1 ip4:192.0.2.0/33 -all"),
		addr("none.example", "192.0.2.1"),
		txt("temp.example", "v=spf1 -all"),
		txt("mail.helo.example", "v=spf1 a -all"),
		addr("mail.helo.example", "192.0.2.10"),
		txt("other.helo.example", "v=spf1 -all"),
		addr("noguess.example", "198.51.100.7"),
	)
	z.SetFault("temp.example", resolver.TypeTXT, dnstest.Timeout)
	return z
}

// load loads configuration text, puts its SPF settings in force for the
// test and compiles it with a fresh registry holding the features.
func load(t *testing.T, text string) *acl.Program {
	t.Helper()
	p, err := tryLoad(t, text)
	if err != nil {
		t.Fatalf("load:\n%s", config.AsList(err).Format())
	}
	return p
}

func tryLoad(t *testing.T, text string) (*acl.Program, error) {
	t.Helper()
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		return nil, err
	}
	reg := acl.NewRegistry()
	Register(reg)
	return acl.Compile(cfg, reg)
}

func newTxn(z resolver.Querier, ip, helo, sender string) *acl.Txn {
	c := &acl.Conn{Helo: helo}
	if ip != "" {
		c.ClientIP = netip.MustParseAddr(ip)
	}
	t := acl.NewTxn(c, &acl.Services{DNS: z, PrimaryHostname: "mx.example.net"})
	t.HasSender, t.Sender = true, sender
	return t
}

var bg = context.Background()

// logs returns the logwrite lines of a transaction.
func logs(t *acl.Txn) []string {
	var out []string
	for _, l := range t.Logs {
		out = append(out, l.Kind+": "+l.Text)
	}
	return out
}

func TestSPFResultList(t *testing.T) {
	z := testZone()
	tests := []struct {
		list   string
		ip     string
		sender string
		want   acl.Verb
	}{
		{"pass", "192.0.2.1", "user@example.com", acl.Accept},
		{"pass : !fail", "192.0.2.1", "user@example.com", acl.Accept},
		{"pass : !fail", "203.0.113.5", "user@example.com", acl.Deny},
		{"pass : !fail", "192.0.2.1", "user@soft.example", acl.Accept},
		{"pass : !fail", "203.0.113.5", "user@soft.example", acl.Accept},
		{"!fail", "203.0.113.5", "user@example.com", acl.Deny},
		{"!fail", "203.0.113.5", "user@neutral.example", acl.Accept},
		{"fail", "203.0.113.5", "user@example.com", acl.Accept},
		{"fail : !pass", "192.0.2.1", "user@example.com", acl.Deny},
		{"fail : !softfail", "192.0.2.1", "user@example.com", acl.Accept},
		{"softfail", "203.0.113.5", "user@soft.example", acl.Accept},
		{"neutral", "203.0.113.5", "user@neutral.example", acl.Accept},
		{"none", "192.0.2.1", "user@none.example", acl.Accept},
		{"permerror", "192.0.2.1", "user@perm.example", acl.Accept},
		{"err_perm", "192.0.2.1", "user@perm.example", acl.Accept},
		{"ERR_PERM", "192.0.2.1", "user@perm.example", acl.Accept},
		{"err_temp", "192.0.2.1", "user@temp.example", acl.Accept},
		{"temperror", "192.0.2.1", "user@temp.example", acl.Accept},
		{"!err_temp", "192.0.2.1", "user@temp.example", acl.Deny},
		{"pass", "2001:db8::25", "user@example.com", acl.Accept},
		{"fail", "2001:db9::25", "user@example.com", acl.Accept},
		{"pass", "::ffff:192.0.2.1", "user@example.com", acl.Accept},
		{"${if eq{$sender_address_domain}{example.com}{pass}{fail}}", "192.0.2.1", "user@example.com", acl.Accept},
		{"${if eq{$sender_address_domain}{example.com}{fail}{pass}}", "192.0.2.1", "user@example.com", acl.Deny},
	}
	for _, tt := range tests {
		t.Run(tt.list+"/"+tt.sender+"/"+tt.ip, func(t *testing.T) {
			p := load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = "+tt.list+"\n  deny\n")
			txn := newTxn(z, tt.ip, "client.example", tt.sender)
			res := p.Run(bg, acl.Rcpt, txn)
			if res.Verb != tt.want || res.Err != nil {
				got := txn.Results.SPF
				t.Errorf("verdict %s (err %v), want %s; evaluation %+v", res.Verb, res.Err, tt.want, got)
			}
		})
	}
}

func TestSPFLoadErrors(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = pass : bogus\n",
			`test.conf:4:23: spf: unknown result "bogus": expected one of pass, fail, softfail, neutral, none, permerror, temperror`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf_guess = passs\n",
			`test.conf:4:22: spf_guess: unknown result "passs"`},
		{"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = \n",
			`test.conf:4:15: spf needs at least one result`},
		{"acl_smtp_connect = c\nbegin acl\nc:\n  accept spf = pass\n",
			`test.conf:4:10: condition "spf" cannot be used in ACL "c", which runs at CONNECT (acl_smtp_connect): it is available at MAIL, RCPT, DATA`},
		{"acl_smtp_helo = h\nbegin acl\nh:\n  warn logwrite = $spf_result\n",
			`variable $spf_result cannot be used in ACL "h", which runs at HELO`},
		{"spf_guess = v=spf1 ip4:192.0.2.0/33 ?all\n",
			`test.conf:1:13: spf_guess is not a valid SPF record`},
		{"spf_authres = maybe\n",
			`test.conf:1:15: spf_authres is a boolean`},
	}
	for _, tt := range tests {
		_, err := tryLoad(t, tt.text)
		if err == nil {
			t.Errorf("%q: no error, want %q", tt.text, tt.want)
			continue
		}
		if got := config.AsList(err).Error(); !strings.Contains(got, tt.want) {
			t.Errorf("%q:\n got %s\nwant %s", tt.text, got, tt.want)
		}
	}
	// The spf_guess error shows the line, like the file's other errors.
	_, err := tryLoad(t, "dns_timeout = 2s\nspf_guess = a/99\n")
	if got := config.AsList(err).Format(); !strings.Contains(got, "test.conf:2:13: spf_guess is not a valid SPF record") || !strings.Contains(got, "\n    spf_guess = a/99\n                ^") {
		t.Errorf("spf_guess error:\n%s", got)
	}
	// A misspelling gets a suggestion.
	_, err = tryLoad(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = sofftail\n")
	if got := config.AsList(err).Error(); !strings.Contains(got, `did you mean "softfail"?`) {
		t.Errorf("no suggestion: %s", got)
	}
}

// countTXT counts the TXT queries for name.
func countTXT(z *dnstest.Zone, name string) int {
	n := 0
	for _, q := range z.Queries() {
		if q.Name == name && q.Type == resolver.TypeTXT {
			n++
		}
	}
	return n
}

const threeStages = `acl_smtp_mail = m
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
m:
  warn spf = pass
       logwrite = mail: $spf_result
  accept
r:
  warn spf = !fail
  warn spf = err_perm : pass
       logwrite = rcpt: $spf_result $spf_used_domain
  accept
d:
  warn logwrite = data: $spf_result $spf_header_comment
  accept spf = pass
`

func TestSPFOncePerTransaction(t *testing.T) {
	z := testZone()
	p := load(t, threeStages)
	txn := newTxn(z, "192.0.2.1", "client.example", "user@example.com")
	for _, st := range []acl.Stage{acl.Mail, acl.Rcpt, acl.Rcpt, acl.Data} {
		if res := p.Run(bg, st, txn); res.Verb != acl.Accept {
			t.Fatalf("%s: %s %v", st, res.Verb, res.Err)
		}
	}
	if n := countTXT(z, "example.com"); n != 1 {
		t.Errorf("%d evaluations (TXT queries for example.com), want 1: %v", n, z.Queries())
	}
	if len(z.Queries()) != 1 {
		t.Errorf("queries: %v", z.Queries())
	}
	got := strings.Join(logs(txn), "\n")
	for _, want := range []string{"mail: pass", "rcpt: pass example.com", "data: pass mx.example.net: 192.0.2.1 is authorized"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q:\n%s", want, got)
		}
	}
	// The next transaction of the connection checks again.
	txn.Reset()
	txn.HasSender, txn.Sender = true, "other@example.com"
	p.Run(bg, acl.Mail, txn)
	p.Run(bg, acl.Rcpt, txn)
	if n := countTXT(z, "example.com"); n != 2 {
		t.Errorf("second transaction: %d TXT queries in all, want 2", n)
	}
}

func TestSPFVariablesAloneTriggerTheCheck(t *testing.T) {
	z := testZone()
	p := load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  warn logwrite = $spf_result\n  warn logwrite = $spf_smtp_comment\n  accept\n")
	txn := newTxn(z, "203.0.113.5", "client.example", "user@example.com")
	p.Run(bg, acl.Rcpt, txn)
	want := []string{"logwrite: fail", "logwrite: 203.0.113.5 is not one of example.com's designated mail servers."}
	if got := logs(txn); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := countTXT(z, "example.com"); n != 1 {
		t.Errorf("%d evaluations", n)
	}
}

func TestSPFNullSenderUsesHelo(t *testing.T) {
	z := testZone()
	p := load(t, `acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
  warn logwrite = $spf_result $spf_used_domain
  warn logwrite = $spf_received
  accept
d:
  accept
`)
	txn := newTxn(z, "192.0.2.10", "mail.helo.example", "")
	p.Run(bg, acl.Rcpt, txn)
	p.Run(bg, acl.Data, txn)
	got := logs(txn)
	if len(got) != 2 || got[0] != "logwrite: pass mail.helo.example" {
		t.Fatalf("logs: %q", got)
	}
	wantHdr := `logwrite: Received-SPF: pass (mx.example.net: 192.0.2.10 is authorized to use 'mail.helo.example' in 'helo' identity (mechanism 'a' matched)) client-ip=192.0.2.10; envelope-from=""; helo=mail.helo.example; receiver=mx.example.net; identity=helo; mechanism=a`
	if got[1] != wantHdr {
		t.Errorf("$spf_received:\n got %s\nwant %s", got[1], wantHdr)
	}
	want := acl.AuthResult{Method: "spf", Result: "pass", Reason: "mechanism 'a' matched",
		Props: []acl.AuthProp{{Type: "smtp", Name: "helo", Value: "mail.helo.example"}}}
	if len(txn.AuthResults) != 1 || !sameAuthResult(txn.AuthResults[0], want) {
		t.Errorf("A-R: %+v, want %+v", txn.AuthResults, want)
	}

	// A sender: the MAIL FROM identity, whatever the HELO name says.
	txn = newTxn(z, "192.0.2.10", "mail.helo.example", "user@example.com")
	p.Run(bg, acl.Rcpt, txn)
	if got := logs(txn); got[0] != "logwrite: pass example.com" || !strings.Contains(got[1], "identity=mailfrom") {
		t.Errorf("with a sender: %q", got)
	}

	// A different HELO name in the same transaction is a different check.
	txn = newTxn(z, "192.0.2.10", "mail.helo.example", "")
	p.Run(bg, acl.Rcpt, txn)
	txn.Conn.Helo = "other.helo.example"
	p.Run(bg, acl.Rcpt, txn)
	if got := logs(txn); got[0] != "logwrite: pass mail.helo.example" || got[2] != "logwrite: fail other.helo.example" {
		t.Errorf("HELO change: %q", got)
	}
}

func sameAuthResult(a, b acl.AuthResult) bool {
	if a.Method != b.Method || a.Result != b.Result || a.Reason != b.Reason || len(a.Props) != len(b.Props) {
		return false
	}
	for i := range a.Props {
		if a.Props[i] != b.Props[i] {
			return false
		}
	}
	return true
}

func TestSPFTempErrorIsAResult(t *testing.T) {
	z := testZone()
	p := load(t, `acl_smtp_rcpt = r
begin acl
r:
  defer spf = temperror
        message = SPF: $spf_smtp_comment
  accept
`)
	txn := newTxn(z, "192.0.2.1", "client.example", "user@temp.example")
	res := p.Run(bg, acl.Rcpt, txn)
	if res.Verb != acl.Defer || res.Err != nil {
		t.Fatalf("verdict %s, err %v: want a defer by the statement, not an error", res.Verb, res.Err)
	}
	if !strings.HasPrefix(res.Message, "SPF: SPF temperror for temp.example: DNS lookup of temp.example TXT failed") {
		t.Errorf("message %q", res.Message)
	}
	// The DNS server's failure is a result: other results do not match.
	p = load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  deny spf = fail : permerror\n  accept\n")
	if res := p.Run(bg, acl.Rcpt, newTxn(z, "192.0.2.1", "client.example", "user@temp.example")); res.Verb != acl.Accept || res.Err != nil {
		t.Errorf("verdict %s, err %v", res.Verb, res.Err)
	}
}

func TestSPFDeadlineTemperrorIsNotKept(t *testing.T) {
	z := testZone()
	p := load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = pass\n")
	txn := newTxn(z, "192.0.2.1", "client.example", "user@example.com")
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if res := p.Run(ctx, acl.Rcpt, txn); res.Verb != acl.Deny {
		t.Fatalf("with the run's context done: %s", res.Verb)
	}
	if res := p.Run(bg, acl.Rcpt, txn); res.Verb != acl.Accept {
		t.Errorf("next run: %s, want accept (a fresh check)", res.Verb)
	}
}

func TestSPFVariables(t *testing.T) {
	z := testZone()
	p := load(t, `acl_smtp_rcpt = r
begin acl
r:
  warn logwrite = $spf_result
  warn logwrite = $spf_header_comment
  warn logwrite = $spf_smtp_comment
  warn logwrite = $spf_received
  warn logwrite = $spf_used_domain
  warn logwrite = $spf_result_guessed
  accept
`)
	tests := []struct {
		ip, sender string
		want       []string
	}{
		{"192.0.2.1", "user@example.com", []string{
			"pass",
			"mx.example.net: 192.0.2.1 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)",
			"SPF pass: example.com permits 192.0.2.1 to send mail as 'user@example.com' (reason: mechanism 'ip4:192.0.2.0/24' matched)",
			`Received-SPF: pass (mx.example.net: 192.0.2.1 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)) client-ip=192.0.2.1; envelope-from="user@example.com"; helo=client.example; receiver=mx.example.net; identity=mailfrom; mechanism="ip4:192.0.2.0/24"`,
			"example.com",
			"no",
		}},
		{"2001:db9::1", "user@example.com", []string{
			"fail",
			"mx.example.net: 2001:db9::1 is not authorized to use 'user@example.com' in 'mfrom' identity (mechanism '-all' matched)",
			"2.0.0.1.0.D.B.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1 is not one of example.com's designated mail servers.", // %{i} of RFC 7208 §7.3
			`Received-SPF: fail (mx.example.net: 2001:db9::1 is not authorized to use 'user@example.com' in 'mfrom' identity (mechanism '-all' matched)) client-ip="2001:db9::1"; envelope-from="user@example.com"; helo=client.example; receiver=mx.example.net; identity=mailfrom; mechanism=-all`,
			"example.com",
			"no",
		}},
		{"192.0.2.1", "user@perm.example", []string{
			"permerror",
			"mx.example.net: permanent error evaluating 'user@perm.example' in 'mfrom' identity for 192.0.2.1: invalid SPF record at perm.example: \"ip4:192.0.2.0/33\": ",
		}},
	}
	for _, tt := range tests {
		txn := newTxn(z, tt.ip, "client.example", tt.sender)
		p.Run(bg, acl.Rcpt, txn)
		got := logs(txn)
		for i, w := range tt.want {
			if i >= len(got) || !strings.HasPrefix(got[i], "logwrite: "+w) {
				t.Errorf("%s from %s: line %d:\n got %q\nwant %q", tt.sender, tt.ip, i, at(got, i), "logwrite: "+w)
			}
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

func TestSPFLookup(t *testing.T) {
	z := testZone()
	p := load(t, `acl_smtp_rcpt = r
begin acl
r:
  warn logwrite = v4 ${lookup{user@example.com}spf{192.0.2.7}}
  warn logwrite = v6 ${lookup{user@example.com}spf{2001:db8::7}}
  warn logwrite = fail6 ${lookup{user@example.com}spf{2001:db9::7}}
  warn logwrite = domain ${lookup{soft.example}spf{203.0.113.1}}
  warn logwrite = yes ${lookup{user@neutral.example}spf{[192.0.2.7]}{got $value}{nothing}}
  warn logwrite = temp ${lookup{user@temp.example}spf{192.0.2.7}}
  accept
`)
	txn := newTxn(z, "203.0.113.99", "client.example", "x@elsewhere.example")
	if res := p.Run(bg, acl.Rcpt, txn); res.Verb != acl.Accept {
		t.Fatalf("%s %v", res.Verb, res.Err)
	}
	want := []string{"logwrite: v4 pass", "logwrite: v6 pass", "logwrite: fail6 fail", "logwrite: domain softfail", "logwrite: yes got neutral", "logwrite: temp temperror"}
	if got := logs(txn); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A bad IP address is an evaluation error: the ACL defers.
	p = load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept condition = ${if eq{${lookup{user@example.com}spf{192.0.2.300}}}{pass}}\n")
	res := p.Run(bg, acl.Rcpt, newTxn(z, "192.0.2.1", "client.example", "user@example.com"))
	if res.Verb != acl.Defer || res.Err == nil || !strings.Contains(res.Err.Error(), `"192.0.2.300" is not an IP address`) {
		t.Errorf("bad IP: %s %v", res.Verb, res.Err)
	}
	// So is an empty key.
	p = load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept condition = ${if eq{${lookup{}spf{192.0.2.1}}}{pass}}\n")
	if res := p.Run(bg, acl.Rcpt, newTxn(z, "192.0.2.1", "client.example", "user@example.com")); res.Verb != acl.Defer {
		t.Errorf("empty key: %s %v", res.Verb, res.Err)
	}
}

func TestSPFGuess(t *testing.T) {
	z := testZone()
	text := `acl_smtp_rcpt = r
begin acl
r:
  warn spf = none
       logwrite = spf: $spf_result guessed=$spf_result_guessed
  warn spf_guess = pass
       logwrite = spf_guess: $spf_result guessed=$spf_result_guessed
  warn logwrite = after: $spf_result
  accept
`
	p := load(t, text)
	txn := newTxn(z, "198.51.100.9", "client.example", "user@noguess.example")
	p.Run(bg, acl.Rcpt, txn)
	want := []string{"logwrite: spf: none guessed=no", "logwrite: spf_guess: pass guessed=yes", "logwrite: after: pass"}
	if got := logs(txn); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("default guess:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A domain with a record is not guessed for.
	txn = newTxn(z, "198.51.100.9", "client.example", "user@example.com")
	p = load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf_guess = fail\n    logwrite = $spf_result_guessed\n")
	if res := p.Run(bg, acl.Rcpt, txn); res.Verb != acl.Accept || logs(txn)[0] != "logwrite: no" {
		t.Errorf("domain with a record: %s %q", res.Verb, logs(txn))
	}

	// The option, without "v=spf1": a narrower guess fails the client.
	p = load(t, "spf_guess = a/32 -all\n"+text)
	if s, _ := p.Feature(featureName).(Settings); s.Guess != "v=spf1 a/32 -all" {
		t.Errorf("settings: %+v", s)
	}
	txn = newTxn(z, "198.51.100.9", "client.example", "user@noguess.example")
	p.Run(bg, acl.Rcpt, txn)
	if got := logs(txn); len(got) != 2 || got[1] != "logwrite: after: fail" {
		t.Errorf("spf_guess = a/32 -all: %q", got)
	}
	// An empty spf_guess makes spf_guess the plain check.
	p = load(t, "spf_guess =\n"+text)
	txn = newTxn(z, "198.51.100.9", "client.example", "user@noguess.example")
	p.Run(bg, acl.Rcpt, txn)
	if got := logs(txn); len(got) != 2 || got[1] != "logwrite: after: none" {
		t.Errorf("empty spf_guess: %q", got)
	}
}

func TestSPFAuthResultsAndReceivedHeader(t *testing.T) {
	z := testZone()
	const acls = "acl_smtp_data = d\nbegin acl\nd:\n  accept\n"
	run := func(options, ip, sender string) *acl.Txn {
		t.Helper()
		p := load(t, options+acls)
		txn := newTxn(z, ip, "client.example", sender)
		if res := p.Run(bg, acl.Data, txn); res.Verb != acl.Accept {
			t.Fatalf("%s %v", res.Verb, res.Err)
		}
		return txn
	}

	// By default: an A-R entry, no header.
	txn := run("", "192.0.2.1", "user@example.com")
	want := acl.AuthResult{Method: "spf", Result: "pass", Reason: "mechanism 'ip4:192.0.2.0/24' matched",
		Props: []acl.AuthProp{{Type: "smtp", Name: "mailfrom", Value: "example.com"}}}
	if len(txn.AuthResults) != 1 || !sameAuthResult(txn.AuthResults[0], want) {
		t.Errorf("A-R: %+v, want %+v", txn.AuthResults, want)
	}
	if len(txn.AddHeaders) != 0 {
		t.Errorf("headers added: %+v", txn.AddHeaders)
	}

	// A fail carries the explanation; a permerror its problem.
	txn = run("", "203.0.113.5", "user@example.com")
	if r := txn.AuthResults[0]; r.Result != "fail" || r.Reason != "mechanism '-all' matched; explanation: 203.0.113.5 is not one of example.com's designated mail servers." {
		t.Errorf("fail: %+v", r)
	}
	txn = run("", "192.0.2.1", "user@perm.example")
	if r := txn.AuthResults[0]; r.Result != "permerror" || !strings.HasPrefix(r.Reason, "invalid SPF record at perm.example") {
		t.Errorf("permerror: %+v", r)
	}
	txn = run("", "192.0.2.1", "user@temp.example")
	if r := txn.AuthResults[0]; r.Result != "temperror" || r.Props[0].Value != "temp.example" {
		t.Errorf("temperror: %+v", r)
	}

	// spf_received_header adds the header on top, folded.
	txn = run("spf_received_header = true\n", "192.0.2.1", "user@example.com")
	if len(txn.AddHeaders) != 1 || !txn.AddHeaders[0].AtStart {
		t.Fatalf("headers: %+v", txn.AddHeaders)
	}
	h := txn.AddHeaders[0].Text
	e := txn.Results.SPF
	if unfolded := strings.ReplaceAll(h, "\r\n\t", " "); unfolded != e.Received() {
		t.Errorf("header unfolds to\n%s\nwant\n%s", unfolded, e.Received())
	}
	for _, line := range strings.Split(h, "\r\n") {
		if len(line) > 78 {
			t.Errorf("line over 78 columns: %q", line)
		}
	}
	if !strings.HasPrefix(h, "Received-SPF: pass (mx.example.net: 192.0.2.1 is authorized") {
		t.Errorf("header: %q", h)
	}

	// spf_authres = false: no entry (the header can still be asked for).
	txn = run("spf_authres = false\n", "192.0.2.1", "user@example.com")
	if len(txn.AuthResults) != 0 || len(z.Queries()) == 0 {
		t.Errorf("spf_authres = false: %+v", txn.AuthResults)
	}
	z.ResetQueries()
	txn = run("no_spf_authres\n", "192.0.2.1", "user@example.com")
	if len(txn.AuthResults) != 0 || len(z.Queries()) != 0 {
		t.Errorf("no_spf_authres: %+v, queries %v", txn.AuthResults, z.Queries())
	}
	txn = run("spf_authres = false\nspf_received_header = yes\n", "192.0.2.1", "user@example.com")
	if len(txn.AuthResults) != 0 || len(txn.AddHeaders) != 1 {
		t.Errorf("header only: %+v %+v", txn.AuthResults, txn.AddHeaders)
	}

	// A local submission (no client address) is not checked.
	z.ResetQueries()
	txn = run("spf_received_header = yes\n", "", "user@example.com")
	if len(txn.AuthResults) != 0 || len(txn.AddHeaders) != 0 || len(z.Queries()) != 0 {
		t.Errorf("local submission: %+v %+v %v", txn.AuthResults, txn.AddHeaders, z.Queries())
	}
}

func TestSPFLocalSubmissionCondition(t *testing.T) {
	z := testZone()
	p := load(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept spf = none\n")
	if res := p.Run(bg, acl.Rcpt, newTxn(z, "", "", "user@example.com")); res.Verb != acl.Accept || len(z.Queries()) != 0 {
		t.Errorf("%s, queries %v", res.Verb, z.Queries())
	}
}

func TestEvaluateHeloWithGuess(t *testing.T) {
	z := testZone()
	c := &spf.Checker{DNS: z, Receiver: "mx.example.net"}
	e := Evaluate(bg, c, Query{IP: netip.MustParseAddr("198.51.100.9"), Helo: "noguess.example", Guess: DefaultGuess})
	if o := e.Outcome; o.Result != spf.Pass || !o.Guessed || o.Identity != spf.IdentityHelo || o.Domain != "noguess.example" {
		t.Errorf("%+v", o)
	}
	if ar := e.AuthResult(); ar.Props[0].Name != "helo" || ar.Props[0].Value != "noguess.example" {
		t.Errorf("%+v", ar)
	}
}

func TestFoldHeader(t *testing.T) {
	long := `Received-SPF: pass (mx.example.net: 192.0.2.1 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)) client-ip=192.0.2.1; envelope-from="a very long quoted local part with spaces in it, long enough to pass a line"@example.com; helo=client.example`
	f := foldHeader(long)
	if strings.ReplaceAll(f, "\r\n\t", " ") != long {
		t.Errorf("does not unfold to the original:\n%s", f)
	}
	for _, line := range strings.Split(f, "\r\n") {
		if strings.Count(line, `"`)%2 != 0 {
			t.Errorf("folded inside a quoted-string: %q", line)
		}
	}
	if short := "Received-SPF: none"; foldHeader(short) != short {
		t.Errorf("short line folded")
	}
}

func TestReasonIsPrintableAndBounded(t *testing.T) {
	e := &Evaluation{Outcome: spf.Outcome{Result: spf.Fail, Mechanism: "-all", Explanation: "bad\r\nX-Injected: yes " + strings.Repeat("x", 300)}}
	r := e.Reason()
	if strings.ContainsAny(r, "\r\n") || len(r) > authres.MaxReason {
		t.Errorf("reason %q", r)
	}
}
