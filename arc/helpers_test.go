package arc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// testMessage is an ordinary message with some whitespace that the
// canonicalisations treat differently.
const testMessage = "Received: from mx.origin.example by relay.example; Tue, 1 Jul 2025 10:00:00 +0000\r\n" +
	"From: Alice <alice@origin.example>\r\n" +
	"To: list@lists.example\r\n" +
	"Subject: Quarterly   figures\r\n" +
	"Date: Tue, 1 Jul 2025 09:59:00 +0000\r\n" +
	"Message-ID: <q3@origin.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello list,  \r\n" +
	"\r\n" +
	"the figures are attached.\r\n" +
	"\r\n\r\n"

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey returns a 2048-bit key generated once per test binary.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// testEdKey returns a fixed Ed25519 key (the seed is not secret).
func testEdKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

// keyRecord returns the DKIM key record publishing the public half of k.
func keyRecord(t testing.TB, k crypto.Signer) string {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("key type %T", k.Public())
	return ""
}

// publish adds the key records of the signers to a zone, splitting long
// records into 255-octet strings.
func publish(t testing.TB, z *dnstest.Zone, signers ...*Signer) *dnstest.Zone {
	for _, s := range signers {
		txt := keyRecord(t, s.Key)
		var chunks []string
		for len(txt) > 255 {
			chunks = append(chunks, txt[:255])
			txt = txt[255:]
		}
		chunks = append(chunks, txt)
		z.AddRecord(resolver.Record{Name: s.Selector + "._domainkey." + s.Domain, Type: resolver.TypeTXT, TXT: chunks})
	}
	return z
}

var fixedNow = func() time.Time { return time.Unix(1751364000, 0) }

// sealAll passes msg through each signer in turn, as a chain of
// forwarders would: validate, seal, prepend. It fails the test when a
// seal cannot be made.
func sealAll(t testing.TB, v *Validator, msg []byte, signers ...*Signer) []byte {
	for _, s := range signers {
		chain, err := v.Validate(context.Background(), bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		ar := s.Domain + "; arc=" + string(chain.State) + "; spf=pass smtp.mailfrom=origin.example"
		hdrs, err := s.Seal(msg, chain, ar)
		if err != nil {
			t.Fatalf("seal by %s: %v", s.Domain, err)
		}
		msg = prepend(hdrs, msg)
	}
	return msg
}

func prepend(hdrs []string, msg []byte) []byte {
	return append([]byte(strings.Join(hdrs, "\r\n")+"\r\n"), msg...)
}

func validate(t testing.TB, v *Validator, msg []byte) *Chain {
	t.Helper()
	c, err := v.Validate(context.Background(), bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
