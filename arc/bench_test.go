package arc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// benchChain seals testMessage three times with the given keys.
func benchChain(b *testing.B, keys ...crypto.Signer) (*Validator, []byte) {
	b.Helper()
	var signers []*Signer
	for i, k := range keys {
		signers = append(signers, &Signer{Domain: []string{"lists.example", "forward.example", "mx.example"}[i], Selector: "s", Key: k, Now: fixedNow})
	}
	zone := publish(b, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(b, v, []byte(testMessage), signers...)
	// Measure with a warm cache, not with the test zone, whose query log
	// grows with every lookup and burdens the garbage collector.
	v.DNS = warmCache(b, zone, signers...)
	if c := validate(b, v, msg); c.State != Pass || c.OldestPass != 1 {
		b.Fatalf("benchmark chain: %s (%s)", c.State, c.Reason)
	}
	return v, msg
}

// cachedAnswers is a resolver.Querier answering from a fixed map, as a
// resolver's cache does once warm.
type cachedAnswers map[string]*resolver.Answer

func (c cachedAnswers) Query(_ context.Context, name string, t resolver.Type) (*resolver.Answer, error) {
	if a, ok := c[resolver.NormalizeName(name)]; ok && t == resolver.TypeTXT {
		return a, nil
	}
	return &resolver.Answer{Name: name, Type: t, Rcode: resolver.RcodeNXDomain}, nil
}

func warmCache(b *testing.B, zone *dnstest.Zone, signers ...*Signer) cachedAnswers {
	c := cachedAnswers{}
	for _, s := range signers {
		name := resolver.NormalizeName(s.Selector + "._domainkey." + s.Domain)
		a, err := zone.Query(context.Background(), name, resolver.TypeTXT)
		if err != nil {
			b.Fatal(err)
		}
		c[name] = a
	}
	return c
}

// BenchmarkValidate3 validates a three-instance chain: three seals and
// three AMSs verified (the newest, and the two older for the oldest-pass),
// with the keys answered from a warm cache. The headline case uses
// RSA-2048, the common ARC key size; cpu-ns/op is the process CPU time
// per validation (it includes the garbage collector's share).
func BenchmarkValidate3(b *testing.B) {
	rk := testRSAKey(b)
	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		keys []crypto.Signer
	}{
		{"rsa2048", []crypto.Signer{rk, rk, rk}},
		{"rsa1024", []crypto.Signer{r1024, r1024, r1024}},
		{"ed25519", []crypto.Signer{testEdKey(1), testEdKey(2), testEdKey(3)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, msg := benchChain(b, bc.keys...)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			cpu0, n := processCPU(), 0
			for b.Loop() {
				c, err := v.Validate(context.Background(), bytes.NewReader(msg))
				if err != nil || c.State != Pass {
					b.Fatal(c.State, err)
				}
				n++
			}
			// CPU time, which unlike ns/op does not grow when other
			// processes compete for the cores.
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkSeal adds a fourth set to a three-instance chain (RSA-2048).
func BenchmarkSeal(b *testing.B) {
	rk := testRSAKey(b)
	v, msg := benchChain(b, rk, rk, rk)
	chain := validate(b, v, msg)
	s := &Signer{Domain: "out.example", Selector: "s", Key: rk, Now: fixedNow}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(msg, chain, "out.example; arc=pass"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignatureVerify is the floor under BenchmarkValidate3: one bare
// signature verification by the standard library, per algorithm. A
// three-instance chain costs six (three seals, three AMSs).
func BenchmarkSignatureVerify(b *testing.B) {
	digest := make([]byte, 32)
	rk := testRSAKey(b)
	rsig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, digest)
	if err != nil {
		b.Fatal(err)
	}
	ek := testEdKey(1)
	esig := ed25519.Sign(ek, digest)
	for _, bc := range []struct {
		name string
		key  *publicKey
		sig  []byte
	}{
		{"rsa2048", &publicKey{Type: dkimcore.KeyRSA, RSA: &rk.PublicKey}, rsig},
		{"ed25519", &publicKey{Type: dkimcore.KeyEd25519, Ed: ek.Public().(ed25519.PublicKey)}, esig},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cpu0, n := processCPU(), 0
			for b.Loop() {
				if !dkimcore.VerifySignature(bc.key, digest, bc.sig) {
					b.Fatal("bad signature")
				}
				n++
			}
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
			}
		})
	}
}
