package dmarc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/spf"
)

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

// BenchmarkEvaluate is a typical pass: record at the Author Domain, SPF
// pass for a bounce subdomain (relaxed: two tree walks), DKIM pass for
// the Author Domain, on a warm in-memory zone.
func BenchmarkEvaluate(b *testing.B) {
	z := zoneSpec{txt: txt("_dmarc.example.com", reject)}.build()
	e := &Evaluator{DNS: z}
	in := Input{FromDomain: "example.com", SPF: spfPass("bounce.example.com"), DKIM: dkimPass("example.com")}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if o := e.Evaluate(ctx, in); o.Status != StatusAccept {
			b.Fatal(o.StatusText)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
}

// BenchmarkEvaluateFailPSD is a failing subdomain under a PSD record: the
// longest common path (three queries, existence check for np=).
func BenchmarkEvaluateFailPSD(b *testing.B) {
	z := zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=none; np=reject; psd=y")}.build()
	e := &Evaluator{DNS: z}
	in := Input{FromDomain: "ghost.bank.test", DKIM: dkimFail("bank.test")}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if o := e.Evaluate(ctx, in); o.Status != StatusReject {
			b.Fatal(o.StatusText)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
}

func BenchmarkFromDomain(b *testing.B) {
	v := []string{` "Joe Q. Public" <john.q.public@example.com>`}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromDomain(v); err != nil {
			b.Fatal(err)
		}
	}
}

// inboundFixture is a 10 KB message signed with RSA-2048 (relaxed/relaxed)
// and a zone with its key, an SPF policy and a DMARC record.
func inboundFixture(b *testing.B) (*dnstest.Zone, string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	z := zoneSpec{txt: txt(
		"_dmarc.example.com", reject,
		"example.com", "v=spf1 ip4:192.0.2.0/24 include:_spf.provider.example -all",
		"_spf.provider.example", "v=spf1 ip4:198.51.100.0/24 -all",
		"sel._domainkey.example.com", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der),
	)}.build()
	var body strings.Builder
	for i := 0; body.Len() < 10*1024; i++ {
		fmt.Fprintf(&body, "Line %d of the message body, long enough to look like prose in a mail.\r\n", i)
	}
	msg := "From: Joe <joe@example.com>\r\nTo: suzie@example.net\r\nSubject: benchmark\r\n" +
		"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\nMessage-ID: <bench@example.com>\r\n" +
		"Received: from mail.example.com (mail.example.com [198.51.100.7]) by mx.example.net\r\n\r\n" + body.String()
	var signed bytes.Buffer
	err = msgdkim.Sign(&signed, strings.NewReader(msg), &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}})
	if err != nil {
		b.Fatal(err)
	}
	return z, signed.String()
}

// BenchmarkDKIMAndDMARC verifies one RSA-2048 signature of a 10 KB
// message through the streaming verifier and evaluates DMARC on the
// result, on a warm zone. cpu-µs/op counts every goroutine's CPU time.
func BenchmarkDKIMAndDMARC(b *testing.B) {
	z, msg := inboundFixture(b)
	v := &dkim.Verifier{DNS: z}
	e := &Evaluator{DNS: z}
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	done := reportCPU(b)
	i := 0
	for b.Loop() {
		if o := inbound(b, ctx, nil, v, e, msg); o.Status != StatusAccept {
			b.Fatal(o.StatusText)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
	done()
}

// BenchmarkInbound is the figure: SPF (one include) + one
// RSA-2048 DKIM signature + DMARC for a 10 KB message, warm zone.
func BenchmarkInbound(b *testing.B) {
	z, msg := inboundFixture(b)
	c := &spf.Checker{DNS: z, Receiver: "mx.example.net"}
	v := &dkim.Verifier{DNS: z}
	e := &Evaluator{DNS: z}
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	done := reportCPU(b)
	i := 0
	for b.Loop() {
		if o := inbound(b, ctx, c, v, e, msg); o.Status != StatusAccept || !o.AlignSPF || !o.AlignDKIM {
			b.Fatal(o.StatusText)
		}
		if i++; i%1024 == 0 {
			z.ResetQueries()
		}
	}
	done()
}

func inbound(b *testing.B, ctx context.Context, c *spf.Checker, v *dkim.Verifier, e *Evaluator, msg string) Outcome {
	var in Input
	if c != nil {
		out := c.CheckMailFrom(ctx, spf.Request{IP: netip.MustParseAddr("198.51.100.7"), Helo: "mail.example.com", Sender: "joe@example.com"})
		in.SPF = SPFResult{Result: string(out.Result), Domain: "example.com"}
	}
	// As the milter feeds it: fields, end of header, 64 KiB body chunks.
	s := v.NewStream(ctx)
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	var froms []string
	for _, f := range fields(head) {
		s.WriteField(f[0], f[1])
		if strings.EqualFold(f[0], "From") {
			froms = append(froms, f[1])
		}
	}
	s.EndHeader()
	s.Write([]byte(body))
	res, err := s.Close()
	if err != nil || len(res) != 1 || res[0].Status != dkim.Pass {
		b.Fatalf("dkim: %v %+v", err, res)
	}
	for _, r := range res {
		in.DKIM = append(in.DKIM, DKIMResult{Result: string(r.Status), Domain: r.Domain, Selector: r.Selector})
	}
	in.FromDomain, in.FromErr = FromDomain(froms)
	return e.Evaluate(ctx, in)
}

// fields splits a CRLF header block into name and raw value pairs, folded
// lines kept in the value.
func fields(head string) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(head, "\r\n") {
		if len(out) > 0 && line != "" && (line[0] == ' ' || line[0] == '\t') {
			out[len(out)-1][1] += "\r\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		out = append(out, [2]string{name, value})
	}
	return out
}
