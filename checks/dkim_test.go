package checks

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/stage"
)

// ---- helpers shared by the DKIM, DMARC and history tests ----

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

// testKeys returns an RSA-2048 and an Ed25519 key, made once per binary.
func testKeys() (*rsa.PrivateKey, ed25519.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, edKey
}

// keyRecord is the DKIM key record of a signer.
func keyRecord(signer crypto.Signer) string {
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			panic(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	panic(fmt.Sprintf("key %T", signer.Public()))
}

// addTXT publishes a TXT record split into 255-octet strings.
func addTXT(z *dnstest.Zone, name, text string) {
	var chunks []string
	for len(text) > 255 {
		chunks = append(chunks, text[:255])
		text = text[255:]
	}
	z.AddRecord(resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: append(chunks, text)})
}

// authZone is the DNS of the DKIM and DMARC tests:
//
//	sender.example   SPF 192.0.2.0/24, DMARC p=reject, keys rsa and ed
//	quar.example     SPF 192.0.2.0/24, DMARC p=quarantine, key rsa
//	none.example     SPF 192.0.2.0/24, DMARC p=none, key rsa
//	norec.example    SPF 192.0.2.0/24, no DMARC record, key rsa
//	third.example    key rsa (a third-party signer)
func authZone() *dnstest.Zone {
	rk, ek := testKeys()
	z := dnstest.NewZone()
	for _, d := range []string{"sender.example", "quar.example", "none.example", "norec.example", "third.example", "strict.example"} {
		addTXT(z, d, "v=spf1 ip4:192.0.2.0/24 -all")
		addTXT(z, "rsa._domainkey."+d, keyRecord(rk))
		z.Add(d + ". 300 IN A 192.0.2.1")
	}
	addTXT(z, "ed._domainkey.sender.example", keyRecord(ek))
	addTXT(z, "_dmarc.sender.example", "v=DMARC1; p=reject; rua=mailto:dmarc-agg@sender.example")
	addTXT(z, "_dmarc.quar.example", "v=DMARC1; p=quarantine; sp=none")
	addTXT(z, "_dmarc.none.example", "v=DMARC1; p=none")
	addTXT(z, "_dmarc.third.example", "v=DMARC1; p=none")
	addTXT(z, "_dmarc.strict.example", "v=DMARC1; p=reject; adkim=s; aspf=s")
	addTXT(z, "mail.helo.example", "v=spf1 ip4:192.0.2.0/24 -all")
	return z
}

// loadTB is load for benchmarks.
func loadTB(tb testing.TB, text string) *acl.Program {
	tb.Helper()
	cfg, err := config.Load("test.conf", []byte(text))
	if err == nil {
		reg := acl.NewRegistry()
		Register(reg)
		var p *acl.Program
		if p, err = acl.Compile(cfg, reg); err == nil {
			return p
		}
	}
	tb.Fatalf("load:\n%s", config.AsList(err).Format())
	return nil
}

// crlf turns LF line ends into CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// plainMessage is a message from an address, CRLF, with a body of about
// size bytes.
func plainMessage(from string, size int) string {
	var b strings.Builder
	b.WriteString("From: Alice <" + from + ">\r\nTo: bob@example.org\r\nSubject: hello\r\n" +
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@" + domainOf(from) + ">\r\n\r\n")
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for n := 0; n < size; n += len(line) {
		b.WriteString(line)
	}
	if size == 0 {
		b.WriteString("Hi.\r\n")
	}
	return b.String()
}

// signMessage signs a CRLF message with d=domain s=selector.
func signMessage(t testing.TB, msg, domain, selector string, key crypto.Signer, mod func(*msgdkim.SignOptions)) string {
	t.Helper()
	opts := &msgdkim.SignOptions{Domain: domain, Selector: selector, Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}
	if mod != nil {
		mod(opts)
	}
	var b bytes.Buffer
	if err := msgdkim.Sign(&b, strings.NewReader(msg), opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// splitMessage splits a CRLF message as a milter receives it: header
// fields with their raw values (leading space and folding kept, no final
// CRLF), then the body.
func splitMessage(msg string) ([]acl.Header, string) {
	var hs []acl.Header
	rest := msg
	for rest != "" {
		if strings.HasPrefix(rest, "\r\n") {
			return hs, rest[2:]
		}
		end := 0
		for {
			i := strings.Index(rest[end:], "\r\n")
			if i < 0 {
				end = len(rest)
				break
			}
			end += i + 2
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		field := strings.TrimSuffix(rest[:end], "\r\n")
		rest = rest[end:]
		name, value, _ := strings.Cut(field, ":")
		hs = append(hs, acl.Header{Name: name, Value: value})
	}
	return hs, ""
}

// delivery is one SMTP transaction for deliver.
type delivery struct {
	ip, helo, sender string
	rcpts            []string
	authID           string
	queueID          string
	msg              string // CRLF
	chunk            int    // body chunk size; 0: 65536
	abort            bool   // abort the body instead of ending it

	// Benchmarks split msg once (splitBody): the header fields and body
	// bytes as the milter hands them over, so that the loop measures the
	// driver, not the test's string copies. Never written to by deliver.
	hs   []acl.Header
	body []byte
}

// splitBody fills d.hs and d.body from d.msg.
func (d *delivery) splitBody() {
	var body string
	d.hs, body = splitMessage(d.msg)
	d.body = []byte(body)
}

// deliver runs a transaction through p with the stage driver the milter
// uses: every stage's ACL with its hooks, the header fields, the body in
// chunks to the features' body writers, the end of the message with its
// finishers. With d.abort the message is closed after its body, before
// the DATA ACL: its body writers see the close.
func deliver(t testing.TB, p *acl.Program, svc *acl.Services, d delivery) (acl.Result, *acl.Txn) {
	t.Helper()
	drv := stage.New(&stage.Env{Program: p, Services: svc, Observer: deliverObserver})
	var ip netip.Addr
	if d.ip != "" {
		ip = netip.MustParseAddr(d.ip)
	}
	ctx := context.Background()
	if res := drv.Connect(ctx, stage.Client{IP: ip}); res.Verb != acl.Accept {
		return res, drv.Txn
	}
	drv.Conn.AuthID = d.authID
	if res := drv.Helo(ctx, d.helo); res.Verb != acl.Accept {
		return res, drv.Txn
	}
	if res := drv.Mail(ctx, d.sender, d.queueID); res.Verb != acl.Accept {
		return res, drv.Txn
	}
	for _, r := range d.rcpts {
		drv.Rcpt(ctx, r)
	}
	if len(drv.Txn.Recipients) == 0 {
		return acl.Result{Verb: acl.Deny, Message: "no recipient"}, drv.Txn
	}
	hs, body := d.hs, d.body
	if hs == nil {
		var text string
		hs, text = splitMessage(d.msg)
		body = []byte(text)
	}
	for _, h := range hs {
		drv.Header(h.Name, h.Value)
	}
	drv.EndOfHeader()
	chunk := d.chunk
	if chunk <= 0 {
		chunk = 64 << 10
	}
	for b := body; len(b) > 0; {
		n := min(chunk, len(b))
		drv.Body(b[:n])
		b = b[n:]
	}
	if d.abort {
		drv.Txn.Results.Close()
	}
	end := drv.EndOfMessage(ctx, d.queueID)
	if msgFail, _ := drv.Failures(); msgFail != nil {
		t.Fatalf("message failed: %v", msgFail)
	}
	return end.Result, drv.Txn
}

// authResults renders the transaction's Authentication-Results entries one
// per line, in the order they were added.
func authResults(txn *acl.Txn) string {
	var lines []string
	for _, r := range txn.AuthResults {
		s := r.Method + "=" + r.Result
		if r.Comment != "" {
			s += " (" + r.Comment + ")"
		}
		if r.Reason != "" {
			s += " reason=" + r.Reason
		}
		for _, p := range r.Props {
			s += " " + p.Type + "." + p.Name + "=" + p.Value
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

// expandVar expands a variable at DATA through a one-statement ACL.
func logsOf(txn *acl.Txn) []string {
	var out []string
	for _, l := range txn.Logs {
		out = append(out, l.Kind+": "+l.Text)
	}
	return out
}

// varsACL is a DATA ACL that logs the DKIM and DMARC variables.
const varsACL = `acl_smtp_data = data
begin acl
data:
  warn log_message = DKIM $dkim_verify_status|$dkim_cur_signer|$dkim_domain|$dkim_selector|$dkim_algo|$dkim_signers|$dkim_verify_reason
  warn log_message = DMARC $dmarc_status|$dmarc_used_domain|$dmarc_domain_policy|$dmarc_alignment_spf|$dmarc_alignment_dkim|$dmarc_status_text
  accept
`

func svcFor(q resolver.Querier) *acl.Services {
	return &acl.Services{DNS: q, PrimaryHostname: "mx.example.net", AuthservID: "mx.example.net",
		Now: func() time.Time { return time.Unix(1700000000, 0) }}
}

// sharedTestdata returns the path of a file under ../shared/testdata; a
// missing file skips the test, or fails it under CI=true.
func sharedTestdata(t testing.TB, rel string) string { return shareddata.Path(t, rel) }

// ---- DKIM ----

func TestDKIMAuthResultsAndVariables(t *testing.T) {
	rk, ek := testKeys()
	p := load(t, varsACL)
	z := authZone()
	base := plainMessage("alice@sender.example", 2000)
	rsaSigned := signMessage(t, base, "sender.example", "rsa", rk, nil)
	bothSigned := signMessage(t, rsaSigned, "sender.example", "ed", ek, nil)
	thirdFirst := signMessage(t, signMessage(t, base, "sender.example", "rsa", rk, nil), "third.example", "rsa", rk, nil)
	bodyTampered := strings.Replace(rsaSigned, "lazy dog", "lazy cat", 1)
	hdrTampered := strings.Replace(rsaSigned, "Subject: hello", "Subject: hullo", 1)
	tests := []struct {
		name     string
		msg      string
		chunk    int
		ar       []string // prefixes of the dkim entries, in order
		vars     string
		noSigned bool
	}{
		{"rsa pass", rsaSigned, 0,
			[]string{"dkim=pass header.d=sender.example header.i=@sender.example header.s=rsa header.a=rsa-sha256 header.b="},
			"DKIM pass|sender.example|sender.example|rsa|rsa-sha256|sender.example|", false},
		{"rsa pass, body in 7-byte chunks", rsaSigned, 7,
			[]string{"dkim=pass header.d=sender.example"}, "DKIM pass|sender.example|sender.example|rsa|rsa-sha256|sender.example|", false},
		{"ed25519 and rsa, same domain: both reported", bothSigned, 0,
			[]string{"dkim=pass header.d=sender.example header.i=@sender.example header.s=ed header.a=ed25519-sha256",
				"dkim=pass header.d=sender.example header.i=@sender.example header.s=rsa header.a=rsa-sha256"},
			"DKIM pass|sender.example|sender.example|ed|ed25519-sha256|sender.example|", false},
		{"third-party signature on top: the aligned one is current", thirdFirst, 0,
			[]string{"dkim=pass header.d=third.example", "dkim=pass header.d=sender.example"},
			"DKIM pass|sender.example|sender.example|rsa|rsa-sha256|third.example:sender.example|", false},
		{"body tampered", bodyTampered, 0,
			[]string{"dkim=fail (body hash did not verify) header.d=sender.example"},
			"DKIM fail|sender.example|sender.example|rsa|rsa-sha256|sender.example|body hash did not verify", false},
		{"header tampered", hdrTampered, 0,
			[]string{"dkim=fail ("}, "DKIM fail|sender.example|", false},
		{"unsigned", base, 0, []string{"dkim=none (no signatures)"}, "DKIM none||||||", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, txn := deliver(t, p, svcFor(z), delivery{ip: "192.0.2.5", helo: "mail.sender.example",
				sender: "alice@sender.example", rcpts: []string{"bob@example.org"}, msg: tt.msg, chunk: tt.chunk})
			if res.Verb != acl.Accept {
				t.Fatalf("verdict %s %v", res.Verb, res.Err)
			}
			var dk []string
			for _, l := range strings.Split(authResults(txn), "\n") {
				if strings.HasPrefix(l, "dkim=") {
					dk = append(dk, l)
				}
			}
			if len(dk) != len(tt.ar) {
				t.Fatalf("dkim entries:\n%s\nwant %d", strings.Join(dk, "\n"), len(tt.ar))
			}
			for i, want := range tt.ar {
				if !strings.HasPrefix(dk[i], want) {
					t.Errorf("entry %d = %q, want prefix %q", i, dk[i], want)
				}
				if strings.HasPrefix(want, "dkim=pass") && !strings.Contains(dk[i], "header.b=") {
					t.Errorf("entry %d has no header.b: %q", i, dk[i])
				}
			}
			logs := strings.Join(logsOf(txn), "\n")
			if !strings.Contains(logs, "log_message: "+tt.vars) {
				t.Errorf("variables:\n%s\nwant %q", logs, tt.vars)
			}
		})
	}
}

// header.b is the first 8 characters of b=, which tell apart two
// signatures of one domain.
func TestDKIMHeaderB(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 100), "sender.example", "rsa", rk, nil)
	hs, _ := splitMessage(msg)
	b := ""
	for _, h := range hs {
		if h.Name == "DKIM-Signature" {
			v := strings.Join(strings.Fields(h.Value), "")
			b = v[strings.Index(v, ";b=")+3:][:8]
		}
	}
	_, txn := deliver(t, load(t, varsACL), svcFor(authZone()), delivery{ip: "192.0.2.5", helo: "h",
		sender: "alice@sender.example", rcpts: []string{"bob@example.org"}, msg: msg})
	if !strings.Contains(authResults(txn), "header.b="+b) {
		t.Errorf("A-R %q lacks header.b=%s", authResults(txn), b)
	}
}

// The RFC 8463 example message (ed25519-sha256 and rsa-sha256, c=simple),
// as a milter receives it.
func TestDKIMRFC8463Example(t *testing.T) {
	raw, err := os.ReadFile(sharedTestdata(t, "dkim/rfc6376.signed.msg"))
	if err != nil {
		t.Fatal(err)
	}
	rsaTXT, err := os.ReadFile(sharedTestdata(t, "dkim/test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	z := dnstest.NewZone()
	addTXT(z, "brisbane._domainkey.football.example.com", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	addTXT(z, "test._domainkey.football.example.com", strings.TrimSpace(string(rsaTXT)))
	_, txn := deliver(t, load(t, varsACL), svcFor(z), delivery{ip: "192.0.2.5", helo: "h",
		sender: "joe@football.example.com", rcpts: []string{"suzie@shopping.example.net"}, msg: crlf(string(raw)), chunk: 5})
	got := authResults(txn)
	for _, want := range []string{
		"dkim=pass header.d=football.example.com header.i=@football.example.com header.s=brisbane header.a=ed25519-sha256 header.b=9/dsDChY",
		"dkim=pass header.d=football.example.com header.i=@football.example.com header.s=test header.a=rsa-sha256 header.b=icKcLSEZ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("A-R:\n%s\nlacks %q", got, want)
		}
	}
}

// c=simple headers keep their exact bytes through Txn.Headers: unusual
// spacing and folding as Postfix and Sendmail pass them still verify, and
// a change of one space does not.
func TestDKIMSimpleCanonicalizationSpacing(t *testing.T) {
	rk, _ := testKeys()
	msg := "From:   Alice  <alice@sender.example>\r\nTo: bob@example.org,\r\n\t carol@example.org\r\nSubject:\tspaced   out \r\n" +
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <2@sender.example>\r\n\r\nbody  with  spaces \r\n\r\n"
	signed := signMessage(t, msg, "sender.example", "rsa", rk, func(o *msgdkim.SignOptions) {
		o.HeaderCanonicalization, o.BodyCanonicalization = msgdkim.CanonicalizationSimple, msgdkim.CanonicalizationSimple
	})
	p := load(t, varsACL)
	_, txn := deliver(t, p, svcFor(authZone()), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: signed, chunk: 3})
	if got := authResults(txn); !strings.Contains(got, "dkim=pass header.d=sender.example") {
		t.Errorf("simple/simple with odd spacing: %s", got)
	}
	changed := strings.Replace(signed, "Subject:\tspaced", "Subject: spaced", 1)
	_, txn = deliver(t, p, svcFor(authZone()), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: changed})
	if got := authResults(txn); !strings.Contains(got, "dkim=fail") {
		t.Errorf("a changed space must fail c=simple: %s", got)
	}
}

func TestDKIMExpired(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 100), "sender.example", "rsa", rk, func(o *msgdkim.SignOptions) {
		o.Expiration = time.Now().Add(time.Hour)
	})
	svc := svcFor(authZone())
	svc.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, txn := deliver(t, load(t, varsACL), svc, delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg})
	if got := authResults(txn); !strings.Contains(got, "dkim=fail (signature expired)") {
		t.Errorf("expired x=: %s", got)
	}
}

// dkim_max_signatures caps the verifications: the others are policy and
// cost no DNS query.
func TestDKIMMaxSignatures(t *testing.T) {
	rk, _ := testKeys()
	msg := plainMessage("alice@sender.example", 100)
	for i := 0; i < 5; i++ {
		msg = signMessage(t, msg, "sender.example", "rsa", rk, nil)
	}
	z := authZone()
	p := load(t, "dkim_max_signatures = 2\n"+varsACL)
	_, txn := deliver(t, p, svcFor(z), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg})
	got := authResults(txn)
	if n := strings.Count(got, "dkim=pass"); n != 2 {
		t.Errorf("%d passes, want 2:\n%s", n, got)
	}
	if n := strings.Count(got, "dkim=policy (too many signatures)"); n != 3 {
		t.Errorf("%d over the cap, want 3:\n%s", n, got)
	}
	if _, err := tryLoad(t, "dkim_max_signatures = 0\n"); err == nil {
		t.Error("dkim_max_signatures = 0 accepted")
	}
}

// DNS failures give temperror; so does the DATA run's deadline, which
// the key queries run under although the stream started at the header.
func TestDKIMTempError(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 100), "sender.example", "rsa", rk, nil)
	z := authZone()
	z.SetFault("rsa._domainkey.sender.example", resolver.TypeTXT, dnstest.ServFail)
	_, txn := deliver(t, load(t, varsACL), svcFor(z), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg})
	if got := authResults(txn); !strings.Contains(got, "dkim=temperror") {
		t.Errorf("SERVFAIL: %s", got)
	}

	slow := &blockingDNS{Querier: authZone(), block: "rsa._domainkey.sender.example"}
	p := load(t, "acl_timeout = 100ms\n"+varsACL)
	start := time.Now()
	_, txn = deliver(t, p, svcFor(slow), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the ACL deadline did not bound the key query", d)
	}
	if got := authResults(txn); !strings.Contains(got, "dkim=temperror") {
		t.Errorf("deadline: %s", got)
	}
}

// blockingDNS answers like Querier except for one name, whose queries wait
// for the context to end.
type blockingDNS struct {
	resolver.Querier
	block string
}

func (b *blockingDNS) Query(ctx context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	if resolver.NormalizeName(name) == b.block {
		<-ctx.Done()
		return nil, &resolver.QueryError{Name: name, Type: t, Kind: resolver.ErrTimeout, Err: ctx.Err()}
	}
	return b.Querier.Query(ctx, name, t)
}

// A body longer than the dkim package keeps in memory is streamed.
func TestDKIMLongBody(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 300<<10), "sender.example", "rsa", rk, nil)
	_, txn := deliver(t, load(t, varsACL), svcFor(authZone()), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg, chunk: 64 << 10})
	if got := authResults(txn); !strings.Contains(got, "dkim=pass header.d=sender.example") {
		t.Errorf("long body: %s", got)
	}
}

// An aborted body reports nothing and the variables say none.
func TestDKIMAbort(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 100<<10), "sender.example", "rsa", rk, nil)
	_, txn := deliver(t, load(t, varsACL), svcFor(authZone()), delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
		rcpts: []string{"bob@example.org"}, msg: msg, abort: true})
	if got := authResults(txn); strings.Contains(got, "dkim=") {
		t.Errorf("aborted: %s", got)
	}
}

// Without the body hook (no message body was seen) there is no DKIM
// entry at all, and the variables say none.
func TestDKIMNotExamined(t *testing.T) {
	p := load(t, varsACL)
	txn := newTxn(authZone(), "192.0.2.5", "h", "alice@sender.example")
	txn.Services = svcFor(authZone())
	txn.Headers = []acl.Header{{Name: "From", Value: " alice@sender.example"}}
	p.Run(bg, acl.Data, txn)
	if got := authResults(txn); strings.Contains(got, "dkim=") {
		t.Errorf("not examined: %s", got)
	}
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "DKIM none|") {
		t.Errorf("logs: %s", logs)
	}
}

func TestDKIMVariablesStages(t *testing.T) {
	_, err := tryLoad(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  warn log_message = $dkim_verify_status\n  accept\n")
	if err == nil || !strings.Contains(err.Error(), "dkim_verify_status") {
		t.Errorf("dkim variable at RCPT: %v", err)
	}
}

// A signed message whose DATA stage never runs (the milter failed it, or
// the client aborted) has its verification cancelled when the message is
// closed — at the next MAIL, an abort or the end of the connection — and
// not by a timer: the key lookups stop and no results are kept.
func TestDKIMCancelledByClose(t *testing.T) {
	rk, _ := testKeys()
	msg := signMessage(t, plainMessage("alice@sender.example", 300<<10), "sender.example", "rsa", rk, nil)
	for _, end := range []struct {
		name  string
		close func(txn *acl.Txn)
	}{
		{"abort or connection end", (*acl.Txn).Close},
		{"next MAIL", (*acl.Txn).Reset},
	} {
		txn := newTxn(authZone(), "192.0.2.5", "h", "alice@sender.example")
		hs, body := splitMessage(msg)
		txn.Headers = hs
		w := StartDKIM(txn)
		if w == nil {
			t.Fatal("no writer for a signed message")
		}
		w.Write([]byte(body))
		w.End()
		d := &txn.Results.DKIM
		end.close(txn)
		if !d.Aborted || !d.Finished {
			t.Errorf("%s: verification not cancelled: %+v", end.name, d)
		}
		if len(d.Results) != 0 {
			t.Errorf("%s: results after the close: %v", end.name, d.Results)
		}
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}
