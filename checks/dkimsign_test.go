package checks

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

var (
	signKeysOnce sync.Once
	signRSA      *rsa.PrivateKey
	signEd       ed25519.PrivateKey
)

// signTestKeys writes the key files DOMAIN.SELECTOR.pem (selector rsa:
// RSA-2048, ed: Ed25519) for each domain into a new directory, publishes
// the public keys in a zone and returns both.
func signTestKeys(t *testing.T, domains ...string) (string, *dnstest.Zone) {
	t.Helper()
	signKeysOnce.Do(func() {
		var err error
		if signRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, signEd, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	dir := t.TempDir()
	z := dnstest.NewZone()
	for _, d := range domains {
		for sel, k := range map[string]crypto.Signer{"rsa": signRSA, "ed": signEd} {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, d+"."+sel+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			var rec string
			switch pub := k.Public().(type) {
			case *rsa.PublicKey:
				pder, _ := x509.MarshalPKIXPublicKey(pub)
				rec = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pder)
			case ed25519.PublicKey:
				rec = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
			}
			var chunks []string
			for len(rec) > 255 {
				chunks, rec = append(chunks, rec[:255]), rec[255:]
			}
			z.AddRecord(resolver.Record{Name: sel + "._domainkey." + d, Type: resolver.TypeTXT, TXT: append(chunks, rec)})
		}
	}
	return dir, z
}

const signTestMsg = "From: Alice <alice@Example.COM>\r\nTo: bob@example.net\r\nSubject: the report\r\n" +
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\n" +
	"Hello Bob,\r\n\r\nthe figures are attached.   \r\n\r\n\r\n"

// signedMessage is the message as it leaves: the :at_start: fields the
// transaction added on top, in order, then the message.
func signedMessage(txn *acl.Txn, msg string) string {
	var b strings.Builder
	for _, h := range txn.AddHeaders {
		if h.AtStart && h.Text != "" {
			b.WriteString(h.Text + "\r\n")
		}
	}
	return b.String() + msg
}

// verifySigned verifies every signature of msg with the dkim package and
// returns "d:s:status" for each.
func verifySigned(t *testing.T, z *dnstest.Zone, msg string) []string {
	t.Helper()
	rs, err := (&dkim.Verifier{DNS: z}).Verify(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		s := r.Domain + ":" + r.Selector + ":" + string(r.Status)
		if r.Reason != "" {
			s += " (" + r.Reason + ")"
		}
		out = append(out, s)
	}
	return out
}

func signConf(dir, more string) string {
	return `dkim_domain = ${lc:${domain:$h_from:}}
dkim_selector = rsa : ed
dkim_private_key = ` + dir + `/${dkim_domain}.${dkim_selector}.pem
` + more
}

// signConfWith is signConf with more: a dkim_ option there replaces
// signConf's, other text is added.
func signConfWith(dir, more string) string {
	conf := signConf(dir, "")
	if !strings.HasPrefix(more, "dkim_") {
		return conf + more
	}
	name, _, _ := strings.Cut(more, " ")
	var kept []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(l, name+" ") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n") + "\n" + more
}

func TestDKIMSignWhom(t *testing.T) {
	dir, z := signTestKeys(t, "example.com")
	both := []string{"example.com:rsa:pass", "example.com:ed:pass"}
	for _, tc := range []struct {
		name     string
		conf     string
		ip, auth string
		want     []string
	}{
		{name: "local submission", want: both},
		{name: "authenticated client", ip: "198.51.100.7", auth: "alice", want: both},
		{name: "from outside", ip: "198.51.100.7"},
		{name: "from outside with control = dkim_sign at RCPT", ip: "198.51.100.7", want: both,
			conf: "acl_smtp_rcpt = r\nbegin acl\nr:\n  accept hosts = 198.51.100.0/24\n         control = dkim_sign\n"},
		{name: "from outside with control = dkim_sign at CONNECT", ip: "198.51.100.7", want: both,
			conf: "acl_smtp_connect = c\nbegin acl\nc:\n  accept hosts = 198.51.100.0/24\n         control = dkim_sign\n"},
		{name: "local with control = dkim_disable_sign at DATA",
			conf: "acl_smtp_data = d\nbegin acl\nd:\n  accept control = dkim_disable_sign\n"},
		{name: "authenticated with control = dkim_disable_sign at MAIL", ip: "198.51.100.7", auth: "alice",
			conf: "acl_smtp_mail = m\nbegin acl\nm:\n  accept control = dkim_disable_sign\n"},
		{name: "empty dkim_domain expansion", conf: "dkim_domain = ${if eq{$sender_address}{nobody@example.com}{example.com}}\n"},
		{name: "one selector's key says 0", want: []string{"example.com:ed:pass"},
			conf: "dkim_private_key = ${if eq{$dkim_selector}{rsa}{0}{" + dir + "/${dkim_domain}.${dkim_selector}.pem}}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := arcLoad(t, signConfWith(dir, tc.conf))
			res, txn := deliver(t, p, &acl.Services{}, delivery{ip: tc.ip, authID: tc.auth, helo: "client.example",
				sender: "alice@example.com", rcpts: []string{"bob@example.net"}, msg: signTestMsg, chunk: 5})
			if res.Verb != acl.Accept {
				t.Fatalf("verdict %s (%v)", res.Verb, res.Err)
			}
			got := verifySigned(t, z, signedMessage(txn, signTestMsg))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("signatures %q, want %q\nlogs: %+v", got, tc.want, txn.Logs)
			}
		})
	}
}

func TestDKIMSignManyDomains(t *testing.T) {
	dir, z := signTestKeys(t, "example.com", "example.org")
	p := arcLoad(t, signConf(dir, "dkim_canon = simple\ndkim_timestamps = 1209600\n"))
	for _, dom := range []string{"example.com", "example.org"} {
		msg := strings.Replace(signTestMsg, "alice@Example.COM", "alice@"+dom, 1)
		_, txn := deliver(t, p, &acl.Services{}, delivery{sender: "alice@" + dom, rcpts: []string{"bob@example.net"}, msg: msg})
		signed := signedMessage(txn, msg)
		got := verifySigned(t, z, signed)
		if want := dom + ":rsa:pass " + dom + ":ed:pass"; strings.Join(got, " ") != want {
			t.Errorf("%s: %q, want %q", dom, got, want)
		}
		for _, want := range []string{"c=simple/simple", "x=", "d=" + dom} {
			if !strings.Contains(signed, want) {
				t.Errorf("%s: the signature lacks %q:\n%s", dom, want, signed)
			}
		}
		if txn.Results.DKIMSign.Signed[0] != dom+":rsa" {
			t.Errorf("Signed = %q", txn.Results.DKIMSign.Signed)
		}
	}
}

// TestDKIMSignOverSigned: the default list over-signs From and the other
// visible fields, so that a field added on the way breaks the signature.
func TestDKIMSignOverSigned(t *testing.T) {
	dir, z := signTestKeys(t, "example.com")
	p := arcLoad(t, signConf(dir, ""))
	_, txn := deliver(t, p, &acl.Services{}, delivery{sender: "alice@example.com", rcpts: []string{"bob@example.net"}, msg: signTestMsg})
	signed := signedMessage(txn, signTestMsg)
	flat := strings.Join(strings.Fields(signed), "")
	if !strings.Contains(flat, "h=From:From:Reply-To:Subject:Subject:Date:Date:To:To:") {
		t.Errorf("From, Subject, Date, To are not over-signed:\n%s", signed)
	}
	for _, added := range []string{"From: Mallory <m@example.com>\r\n", "Subject: urgent\r\n", "Reply-To: m@evil.example\r\n", "Cc: x@example.net\r\n"} {
		// An extra field after the signatures, where a verifier looks
		// first (bottom-up, the extra one is the bottom of the header).
		i := strings.Index(signed, "\r\n\r\n")
		tampered := signed[:i+2] + added + signed[i+2:]
		for _, r := range verifySigned(t, z, tampered) {
			if strings.HasSuffix(r, ":pass") {
				t.Errorf("with %q added, %s", strings.TrimSpace(added), r)
			}
		}
	}
}

func TestDKIMSignProblems(t *testing.T) {
	dir, _ := signTestKeys(t, "example.com")
	missing := "dkim_private_key = " + dir + "/${dkim_domain}.${dkim_selector}.missing.pem\n"
	for _, tc := range []struct {
		name, conf string
		verb       acl.Verb
		signed     int
		log        string
	}{
		{"missing key file, not strict", missing, acl.Accept, 0, "cannot read the key file"},
		{"missing key file, strict", missing + "dkim_strict = true\n", acl.Defer, 0, ""},
		{"expansion of a selector list with a bad selector", "dkim_selector = rsa : ${if def:h_from:{b@d}}\n", acl.Accept, 1, "not a valid selector"},
		{"the DATA ACL removes a signed field", "acl_smtp_data = d\nbegin acl\nd:\n  accept remove_header = Subject\n", acl.Accept, 0, "removes Subject"},
		{"the DATA ACL adds a signed field", "acl_smtp_data = d\nbegin acl\nd:\n  accept add_header = Reply-To: list@example.com\n", acl.Accept, 0, "adds or removes Reply-To"},
		{"the DATA ACL adds an unsigned field", "acl_smtp_data = d\nbegin acl\nd:\n  accept add_header = X-Scanned: yes\n", acl.Accept, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := arcLoad(t, signConfWith(dir, tc.conf))
			res, txn := deliver(t, p, &acl.Services{}, delivery{sender: "alice@example.com", rcpts: []string{"bob@example.net"}, msg: signTestMsg})
			if res.Verb != tc.verb {
				t.Fatalf("verdict %s (%v), want %s", res.Verb, res.Err, tc.verb)
			}
			if n := len(txn.Results.DKIMSign.Signed); n != tc.signed {
				t.Errorf("%d signatures, want %d", n, tc.signed)
			}
			var logs []string
			for _, l := range txn.Logs {
				logs = append(logs, l.Text)
			}
			if tc.log != "" && !strings.Contains(strings.Join(logs, "\n"), tc.log) {
				t.Errorf("logs %q lack %q", logs, tc.log)
			}
			if tc.verb == acl.Defer && (res.Err == nil || !strings.Contains(res.Err.Error(), "dkim_strict")) {
				t.Errorf("defer error %v does not name dkim_strict", res.Err)
			}
		})
	}
}

func TestDKIMSignLoadErrors(t *testing.T) {
	dir, _ := signTestKeys(t, "example.com")
	for _, tc := range []struct{ conf, want string }{
		{"dkim_domain = example.com\ndkim_private_key = " + dir + "/example.com.rsa.pem\n", "test.conf:1:15: dkim_domain is set but dkim_selector is not"},
		{"dkim_domain = example.com\ndkim_selector = s\ndkim_private_key = relative.pem\n", "test.conf:3:20: dkim_private_key: \"relative.pem\" is neither"},
		{signConf(dir, "dkim_selector = ${dkim_selector}\n"), "$dkim_selector is the selector"},
		{signConf(dir, "dkim_domain = $dkim_domain\n"), "$dkim_domain is the signing domain"},
		{signConf(dir, "dkim_sign_headers = +From : Authentication-Results\n"), "test.conf:4:29: dkim_sign_headers: Authentication-Results cannot be signed"},
		{signConf(dir, "dkim_hash = sha512\n"), "dkim_hash: \"sha512\" is not supported"},
		{signConf(dir, "acl_smtp_data = d\nbegin acl\nd:\n  accept control = dkim_sign\n"), "control \"dkim_sign\" cannot be used in ACL \"d\""},
		{signConf(dir, "dkim_domain = ${lc:$rcpt_domain}\n"), "unknown variable $rcpt_domain"},
	} {
		_, err := arcTryLoad(tc.conf)
		if err == nil {
			t.Errorf("%q: loaded", tc.conf)
			continue
		}
		if got := config.AsList(err).Format(); !strings.Contains(got, tc.want) {
			t.Errorf("%q:\n%s\nwant %q", tc.conf, got, tc.want)
		}
	}
}
