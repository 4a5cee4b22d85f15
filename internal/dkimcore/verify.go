package dkimcore

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"slices"
)

// The signing algorithms accepted (RFC 6376 §3.3 minus rsa-sha1, which
// RFC 8301 §3.1 forbids; RFC 8463 §3 for Ed25519).
const (
	AlgRSASHA256     = "rsa-sha256"
	AlgEd25519SHA256 = "ed25519-sha256"
)

// KeyTypeOf returns the k= key type an accepted a= algorithm needs, or ""
// for any other algorithm.
func KeyTypeOf(alg string) string {
	switch alg {
	case AlgRSASHA256:
		return KeyRSA
	case AlgEd25519SHA256:
		return KeyEd25519
	}
	return ""
}

// VerifySignature checks a signature over a SHA-256 digest:
// RSASSA-PKCS1-v1_5 (RFC 6376 §3.3.1) or PureEdDSA Ed25519 over the
// digest (RFC 8463 §3).
//
// Go keeps no precomputed form of an RSA public key: crypto/rsa rebuilds
// its Montgomery modulus from N on each verification (only private keys
// have Precompute), so a cached *rsa.PublicKey is all that can be kept.
func VerifySignature(key *PublicKey, digest, sig []byte) bool {
	switch key.Type {
	case KeyEd25519:
		return ed25519.Verify(key.Ed, digest, sig)
	case KeyRSA:
		return rsa.VerifyPKCS1v15(key.RSA, crypto.SHA256, digest, sig) == nil
	}
	return false
}

// DecodeBase64 decodes a base64 value after removing its FWS (b=, bh=).
func DecodeBase64(s string) ([]byte, error) { return DecodeBase64To(nil, s) }

// DecodeBase64To is DecodeBase64 appending the decoded bytes to dst: it
// returns dst extended with them.
func DecodeBase64To(dst []byte, s string) ([]byte, error) {
	var stack [1024]byte
	in := stack[:0]
	if len(s) > len(stack) {
		in = make([]byte, 0, len(s))
	}
	i := 0
	// Eight bytes at a time: those of 0x20 or less are looked at one by
	// one.
	for ; i+8 <= len(s); i += 8 {
		chunk := s[i : i+8]
		if ctlBytes(load64(chunk)) == 0 {
			in = append(in, chunk...)
			continue
		}
		for j := 0; j < 8; j++ {
			if !IsFWS(chunk[j]) {
				in = append(in, chunk[j])
			}
		}
	}
	for ; i < len(s); i++ {
		if !IsFWS(s[i]) {
			in = append(in, s[i])
		}
	}
	n := len(dst)
	dst = slices.Grow(dst, base64.StdEncoding.DecodedLen(len(in)))
	m, err := base64.StdEncoding.Decode(dst[n:n+base64.StdEncoding.DecodedLen(len(in))], in)
	return dst[:n+m], err
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
