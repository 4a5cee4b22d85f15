package arc

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// The problems Signer.Check finds; each error wraps one of these.
var (
	ErrSignerDomain   = errors.New("not a valid signing domain")
	ErrSignerSelector = errors.New("not a valid selector")
	ErrSignerKey      = errors.New("not a usable signing key")
	ErrSignerHeader   = errors.New("not a header field an ARC-Message-Signature may cover")
)

// signerError is a problem of a signer's configuration: its text for the
// operator, its kind for errors.Is.
type signerError struct {
	msg  string
	kind error
}

func (e *signerError) Error() string { return e.msg }
func (e *signerError) Unwrap() error { return e.kind }

func signerErrorf(kind error, format string, args ...any) error {
	return &signerError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// minSigningRSABits is the smallest RSA key a signer may use (RFC 8301
// §3.2); 2048 bits are recommended.
const minSigningRSABits = 1024

// CheckDomain checks a d= value for a new seal.
func CheckDomain(d string) error {
	if !validDomain(strings.TrimSuffix(d, ".")) {
		return signerErrorf(ErrSignerDomain, "%q is not a valid domain", d)
	}
	return nil
}

// CheckSelector checks an s= value for a new seal.
func CheckSelector(s string) error {
	if !validSelector(s) {
		return signerErrorf(ErrSignerSelector, "%q is not a valid selector", s)
	}
	return nil
}

// CheckSigningKey checks that key can seal: Ed25519, or RSA of at least
// 1024 bits.
func CheckSigningKey(key crypto.Signer) error {
	if key == nil {
		return signerErrorf(ErrSignerKey, "no signing key")
	}
	if k, isRSA := key.Public().(*rsa.PublicKey); isRSA && k.N.BitLen() < minSigningRSABits {
		return signerErrorf(ErrSignerKey, "the RSA key has %d bits: at least %d are needed (RFC 8301), 2048 recommended",
			k.N.BitLen(), minSigningRSABits)
	}
	return nil
}

// CheckSignHeader checks one entry of Signer.Headers: a field name,
// optionally "+name" (forbid one more such field later), and not one an
// ARC-Message-Signature must not cover.
func CheckSignHeader(entry string) error {
	name := strings.TrimPrefix(entry, "+")
	switch lname := ascii.Lower(name); {
	case !ascii.FieldName(name):
		return signerErrorf(ErrSignerHeader, "%q is not a header field name", entry)
	case lname == "arc-seal":
		return signerErrorf(ErrSignerHeader, "ARC-Seal cannot be covered by an ARC-Message-Signature (RFC 8617 §4.1.2)")
	case lname == "authentication-results":
		return signerErrorf(ErrSignerHeader, "Authentication-Results must not be signed: the next hop removes it, breaking the signature (RFC 8617 §4.1.2), and sidecar adds its own after sealing")
	}
	return nil
}

// Check tells whether the signer can seal: its domain, selector, key and
// header list, then one seal of a tiny message, which proves the rest.
// The daemon runs it when it loads arc_sign, "sidecar arc-sign" before it
// seals.
func (s *Signer) Check() error {
	var errs []error
	for _, err := range []error{CheckDomain(s.Domain), CheckSelector(s.Selector), CheckSigningKey(s.Key)} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range s.Headers {
		if err := CheckSignHeader(h); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, err := s.Seal([]byte("From: <postmaster@example.net>\r\n\r\n"), &Chain{State: None}, "example.net; none"); err != nil {
		return fmt.Errorf("cannot seal with this configuration: %w", err)
	}
	return nil
}
