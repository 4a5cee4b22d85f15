package arc

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestParseAARValue(t *testing.T) {
	for in, want := range map[string]int{"i=1; x.example; none": 1, " (c) i (c) = (c) 12 (c) ; x": 12} {
		if i, _, err := parseAARValue(in); err != nil || i != want {
			t.Errorf("%q: %d %v", in, i, err)
		}
	}
	for _, in := range []string{"x.example; i=1;", "i=1 x.example;", "i=; x", "i=a; x", "I=1; x", "i=12345; x", ""} {
		if _, _, err := parseAARValue(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestKeyRecords(t *testing.T) {
	rk := testRSAKey(t)
	rsaRec := keyRecord(t, rk)
	p := rsaRec[strings.Index(rsaRec, "p=")+2:]
	good := []string{
		rsaRec,
		"k=rsa; p=" + p,
		"v=DKIM1; h=sha1:sha256; s=email; t=y; p=" + p[:20] + " \r\n " + p[20:],
		"v=DKIM1; s=*; p=" + p + ";",
		keyRecord(t, testEdKey(3)),
	}
	for _, r := range good {
		if _, err := parseKeyRecord(r); err != nil {
			t.Errorf("%.40q: %v", r, err)
		}
	}
	bad := map[string]string{
		"k=rsa; p=":                     "revoked",
		"v=DKIM2; p=" + p:               "DKIM1",
		"k=rsa; v=DKIM1; p=" + p:        "DKIM1",
		"h=sha1; p=" + p:                "sha256",
		"s=tlsrpt; p=" + p:              "email",
		"k=dsa; p=" + p:                 "unknown key type",
		"p=!!!":                         "base64",
		"k=ed25519; p=" + p:             "32 bytes",
		"v=DKIM1; k=rsa; omgwhatsgoing": "without",
		"v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAIWmlgix/84GJ+dfgjm7LTc9EPdfkftlgiPpCq4/kbDAZmU0VvYKDljjleJ1dfvS+CGy9U/kk1tG3EeEvb82xAcCAwEAAQ==": "512 bits",
	}
	for r, want := range bad {
		if _, err := parseKeyRecord(r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want %q", r, err, want)
		}
	}
	// Several TXT records: the first that decodes wins.
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "s._domainkey.x.example", Type: resolver.TypeTXT, TXT: []string{"v=spf1 -all"}},
		resolver.Record{Name: "s._domainkey.x.example", Type: resolver.TypeTXT, TXT: []string{rsaRec[:100], rsaRec[100:]}})
	if _, kerr := lookupKey(context.Background(), z, keyCache{}, "s", "x.example"); kerr != nil {
		t.Errorf("two records: %v", kerr)
	}
	if _, kerr := lookupKey(context.Background(), nil, keyCache{}, "s", "x.example"); kerr == nil || !kerr.temp {
		t.Errorf("no resolver: %v", kerr)
	}
}

// TestDKIMVectorsRFC8463 checks the canonicalisation and both signature
// algorithms against an independent signer: the RFC 8463 example message
// with its ed25519-sha256 and rsa-sha256 DKIM signatures, verified as if
// they were ARC-Message-Signatures (same tags, bar v= and i=).
func TestDKIMVectorsRFC8463(t *testing.T) {
	dir := findSharedTestdata(t)
	data, err := os.ReadFile(filepath.Join(dir, "dkim", "rfc6376.signed.msg"))
	if dir == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dkim test data not found beside the repository")
		}
		t.Skip("dkim test data not found beside the repository")
	}
	rsaTXT, err := os.ReadFile(filepath.Join(dir, "dkim", "test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "brisbane._domainkey.football.example.com", Type: resolver.TypeTXT,
		TXT: []string{"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}})
	z.AddRecord(resolver.Record{Name: "test._domainkey.football.example.com", Type: resolver.TypeTXT,
		TXT: []string{strings.TrimSpace(string(rsaTXT))}})
	hdr, body := splitMessage(data)
	fields := dkimcore.SplitHeader(hdr, dkimcore.Strict)
	n := 0
	for i := range fields {
		f := &fields[i]
		if f.LName != "dkim-signature" {
			continue
		}
		tags, err := dkimcore.ParseTagList(f.Value())
		if err != nil {
			t.Fatal(err)
		}
		sig := &Signature{field: f, tags: tags}
		bk, _ := bodyKeyOf(sig)
		bh := dkimcore.NewBodyHasher(bk)
		bh.Write(body)
		vf := &verifier{ctx: context.Background(), dns: z, now: fixedNow(), fields: fields,
			bodies: map[bodyKey]*bodyHasher{bk: bh}, keys: keyCache{}}
		a, _ := tags.Get("a")
		if verr := vf.verifyAMS(&Set{AMS: sig}); verr != nil {
			t.Errorf("%s: %v", a, verr)
		}
		// A changed header breaks it.
		saved := fields[len(fields)-1].Raw
		fields[len(fields)-1].Raw = strings.Replace(saved, "@", "@x", 1)
		vf.keys = keyCache{}
		if verr := vf.verifyAMS(&Set{AMS: sig}); verr == nil {
			t.Errorf("%s: verified after a change", a)
		}
		fields[len(fields)-1].Raw = saved
		n++
	}
	if n != 2 {
		t.Fatalf("%d signatures", n)
	}
}

func TestParsePrivateKey(t *testing.T) {
	rk := testRSAKey(t)
	ek := testEdKey(5)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for name, in := range map[string][]byte{
		"pkcs1":         pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"pkcs8 rsa":     pkcs8(rk),
		"pkcs8 ed25519": pkcs8(ek),
		"seed":          []byte(base64.StdEncoding.EncodeToString(ek.Seed()) + "\n"),
	} {
		k, err := ParsePrivateKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := (&Signer{Domain: "a.example", Selector: "s", Key: k}).Seal([]byte(testMessage), &Chain{State: None}, "a.example; none"); err != nil {
			t.Errorf("%s: seal: %v", name, err)
		}
	}
	for _, in := range []string{"", "junk", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"} {
		if _, err := ParsePrivateKey([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	// The RFC 8463 example key: its public half is the brisbane record.
	dir := findSharedTestdata(t)
	if data, err := os.ReadFile(filepath.Join(dir, "dkim", "rfc8032_7_1.key")); dir != "" && err == nil {
		k, err := ParsePrivateKey(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)); got != "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" {
			t.Errorf("RFC 8463 key: public %s", got)
		}
	}
}
