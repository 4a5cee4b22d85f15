package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
	"strings"
	"sync"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// sharedTestdata returns the path of a file under ../shared/testdata
// (beside the repository). When it is missing the test is skipped, or
// fails under CI=true.
func sharedTestdata(t testing.TB, rel string) string { return shareddata.Path(t, rel) }

// keys are generated once per test binary: RSA-2048 generation is slow.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) (*rsa.PrivateKey, ed25519.PrivateKey) {
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

// keyRecord returns the DKIM key record text for a signer's public key.
func keyRecord(t testing.TB, signer crypto.Signer, extra string) string {
	t.Helper()
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; " + extra + "p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; " + extra + "p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("unsupported key %T", signer.Public())
	return ""
}

// addTXT publishes a TXT record, split into 255-octet strings as a zone
// file would hold it.
func addTXT(z *dnstest.Zone, name, text string) {
	var chunks []string
	for len(text) > 255 {
		chunks = append(chunks, text[:255])
		text = text[255:]
	}
	chunks = append(chunks, text)
	z.AddRecord(resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: chunks})
}

// sign signs msg (CRLF) and returns the signed message.
func sign(t testing.TB, msg string, opts *msgdkim.SignOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := msgdkim.Sign(&b, strings.NewReader(msg), opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// crlf turns LF line ends into CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func verify(t testing.TB, v *Verifier, msg string) []Result {
	t.Helper()
	res, err := v.Verify(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}
