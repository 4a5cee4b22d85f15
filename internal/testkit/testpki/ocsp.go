package testpki

import (
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponse is a DER OCSP response (RFC 6960) on leaf, a certificate
// ca issued, signed by ca itself: status is ocsp.Good, ocsp.Revoked or
// ocsp.Unknown; it was produced an hour ago and is good for a day.
func (ca *CA) OCSPResponse(tb testing.TB, leaf *x509.Certificate, status int) []byte {
	tb.Helper()
	now := time.Now()
	tmpl := ocsp.Response{Status: status, SerialNumber: leaf.SerialNumber,
		ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)}
	if status == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Hour), ocsp.KeyCompromise
	}
	der, err := ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}
