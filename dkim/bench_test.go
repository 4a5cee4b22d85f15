package dkim

import (
	"context"
	"fmt"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// benchMessage is a 10 KB message signed with the RSA-2048 test key.
func benchMessage(b *testing.B, can msgdkim.Canonicalization) (*dnstest.Zone, string) {
	rk, _ := testKeys(b)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(b, rk, ""))
	var body strings.Builder
	for i := 0; body.Len() < 10*1024; i++ {
		fmt.Fprintf(&body, "Line %d of the message body, long enough to look like prose in a mail.\r\n", i)
	}
	msg := "From: Joe <joe@example.com>\r\nTo: suzie@example.net\r\nSubject: benchmark\r\n" +
		"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\nMessage-ID: <bench@example.com>\r\n\r\n" + body.String()
	return z, sign(b, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk,
		HeaderCanonicalization: can, BodyCanonicalization: can,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}})
}

func benchVerify(b *testing.B, can msgdkim.Canonicalization) {
	z, msg := benchMessage(b, can)
	v := &Verifier{DNS: z}
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b)()
	i := 0
	for b.Loop() {
		res, err := v.Verify(ctx, strings.NewReader(msg))
		if err != nil || len(res) != 1 || res[0].Status != Pass {
			b.Fatal(err, res)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
}

// BenchmarkVerifyRelaxed10KB verifies one RSA-2048 relaxed/relaxed
// signature of a 10 KB message.
func BenchmarkVerifyRelaxed10KB(b *testing.B) { benchVerify(b, msgdkim.CanonicalizationRelaxed) }

// BenchmarkVerifySimple10KB is the same with simple/simple.
func BenchmarkVerifySimple10KB(b *testing.B) { benchVerify(b, msgdkim.CanonicalizationSimple) }

// BenchmarkGoMsgauthRelaxed10KB is go-msgauth alone on the same message,
// the baseline of this package's overhead.
func BenchmarkGoMsgauthRelaxed10KB(b *testing.B) {
	z, msg := benchMessage(b, msgdkim.CanonicalizationRelaxed)
	opts := &msgdkim.VerifyOptions{LookupTXT: resolver.TXTLookup(context.Background(), z)}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b)()
	i := 0
	for b.Loop() {
		res, err := msgdkim.VerifyWithOptions(strings.NewReader(msg), opts)
		if err != nil || res[0].Err != nil {
			b.Fatal(err)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
}

// reportCPU adds the process CPU time per operation (all goroutines, user
// and system) to the benchmark's metrics.
func reportCPU(b *testing.B) func() {
	before := processCPU()
	return func() {
		if n := b.N; n > 0 && before > 0 {
			b.ReportMetric(float64((processCPU()-before).Nanoseconds())/float64(n)/1000, "cpu-µs/op")
		}
	}
}
