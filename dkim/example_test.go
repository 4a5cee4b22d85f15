package dkim_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// A milter feeds a Stream header fields as it receives them (raw values,
// leading space kept), then the body chunks; End waits for the results.
func ExampleStream() {
	zone := dnstest.NewZone() // no key published: permerror
	v := &dkim.Verifier{DNS: zone}
	s := v.NewStream(context.Background())
	s.WriteField("DKIM-Signature", " v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n"+
		"\th=from:subject; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=dGVzdHNpZ25hdHVyZQ==")
	s.WriteField("From", " Joe <joe@example.com>")
	s.WriteField("Subject", " hello")
	s.EndHeader()
	s.Write([]byte("Hi.\r\n"))
	if err := s.End(); err != nil {
		fmt.Println(err)
	}
	for _, r := range s.Results() {
		fmt.Println(r.AuthResult())
	}
	// Output:
	// dkim=permerror (no key for signature) header.d=example.com header.i=@example.com header.s=sel header.a=rsa-sha256 header.b=dGVzdHNp
}

func ExampleVerifier_Verify() {
	v := &dkim.Verifier{DNS: dnstest.NewZone(), MaxSignatures: 8}
	res, err := v.Verify(context.Background(), strings.NewReader("From: a@example.com\r\n\r\nunsigned\r\n"))
	fmt.Println(len(res), err)
	// Output:
	// 0 <nil>
}
