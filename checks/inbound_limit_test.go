package checks

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkInboundLimit is the floor under BenchmarkInboundAuth on the
// same machine: the work no verifier of that message can skip, one
// RSA-2048 signature verification and SHA-256 over the message bytes.
// Issue 12's target: BenchmarkInboundAuth within 1.5× of it.
func BenchmarkInboundLimit(b *testing.B) {
	rk, _ := testKeys()
	msg := []byte(plainMessage("alice@sender.example", 10<<10))
	digest := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	before := processCPU()
	for b.Loop() {
		d := sha256.Sum256(msg)
		if err := rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, d[:], sig); err != nil {
			b.Fatal(err)
		}
	}
	if before > 0 {
		b.ReportMetric(float64((processCPU()-before).Nanoseconds())/float64(b.N)/1000, "cpu-µs/op")
	}
}
