package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// dkimSelector is the selector of the corpus's DKIM key in every sender
// domain of the fake zone.
const dkimSelector = "load"

// newDKIMKey makes the RSA-2048 key that signs the corpus with -dkim.
func newDKIMKey() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

// dkimRecords are the key records of the fake zone: the public key at
// load._domainkey.DOMAIN of each sender domain, in 250-byte strings.
func dkimRecords(domains int, key *rsa.PrivateKey) ([]string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	text := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(text) > 0 {
		n := min(len(text), 250)
		parts = append(parts, `"`+text[:n]+`"`)
		text = text[n:]
	}
	var recs []string
	for i := range domains {
		recs = append(recs, fmt.Sprintf("%s._domainkey.%s. 3600 IN TXT %s", dkimSelector, senderDomain(i), strings.Join(parts, " ")))
	}
	return recs, nil
}

// signCorpus puts a DKIM-Signature field (rsa-sha256, relaxed/relaxed,
// d= the sender's domain) at the top of every message, over the header
// fields and body exactly as the generator sends them to the milter.
func signCorpus(corpus []*message, key *rsa.PrivateKey) error {
	for _, m := range corpus {
		_, domain, _ := strings.Cut(m.sender, "@")
		var msg bytes.Buffer
		for _, h := range m.headers {
			msg.WriteString(h[0] + ":" + h[1] + "\r\n")
		}
		msg.WriteString("\r\n")
		msg.Write(m.body)
		s, err := msgdkim.NewSigner(&msgdkim.SignOptions{
			Domain: domain, Selector: dkimSelector, Signer: key,
			HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
			BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
			HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"},
		})
		if err != nil {
			return err
		}
		if _, err := s.Write(msg.Bytes()); err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		name, value, ok := strings.Cut(strings.TrimSuffix(s.Signature(), "\r\n"), ":")
		if !ok {
			return fmt.Errorf("DKIM signer gave %q", s.Signature())
		}
		m.headers = append([][2]string{{name, value}}, m.headers...)
		m.size += len(name) + 1 + len(value) + 2
	}
	return nil
}
