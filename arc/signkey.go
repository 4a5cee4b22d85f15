package arc

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParsePrivateKey decodes a signing key file for a Signer (arc_sign's
// KEYFILE): a PEM "RSA PRIVATE KEY" (PKCS #1), a PEM "PRIVATE KEY"
// (PKCS #8, RSA or Ed25519), or the base64 32-octet Ed25519 seed that
// dkimpy and RFC 8463's examples use.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		switch blk.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("arc: RSA private key: %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("arc: PKCS #8 private key: %w", err)
			}
			switch k := k.(type) {
			case *rsa.PrivateKey:
				return k, nil
			case ed25519.PrivateKey:
				return k, nil
			}
			return nil, fmt.Errorf("arc: unsupported private key type %T", k)
		}
		return nil, fmt.Errorf("arc: unsupported PEM block %q", blk.Type)
	}
	seed, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return nil, errors.New("arc: no PEM private key or base64 Ed25519 seed found")
}
