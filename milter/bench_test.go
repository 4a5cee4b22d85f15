package milter

import (
	"log/slog"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// BenchmarkTransaction runs whole milter sessions over loopback TCP, as
// Postfix would: negotiation, connect, HELO, MAIL, two recipients (one
// rejected), ten header fields, a 16 KiB body in 4 KiB chunks, end of
// message with header edits, QUIT.
func BenchmarkTransaction(b *testing.B) {
	h := newHarness(b, testConf, func(e *Env) { e.Logger = slog.New(slog.DiscardHandler) })
	hdrs := []string{
		"Received", " from client.example.org (client.example.org [192.0.2.10])\n\tby mx.example.net with ESMTPS id QID",
		"From", " Sender <sender@example.org>",
		"To", " rcpt@example.net",
		"Subject", " benchmark",
		"Date", " Mon, 23 Nov 2026 10:00:00 +0000",
		"Message-ID", " <bench@example.org>",
		"MIME-Version", " 1.0",
		"Content-Type", " text/plain; charset=utf-8",
		"DKIM-Signature", " v=1; a=rsa-sha256; d=example.org; s=sel; h=from:to:subject; bh=abc; b=def",
		"Authentication-Results", " mx.example.net; dkim=pass",
	}
	chunk := []byte(strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m := &mta{t: b, s: h.client()}
		m.connect("client.example.org", gomilter.FamilyInet, "192.0.2.10")
		m.helo("client.example.org")
		m.mail("sender@example.org", "QID")
		m.rcpt("nobody@example.net")
		m.rcpt("rcpt@example.net")
		m.check(nil, m.s.Macros(gomilter.CodeData, "i", "QID"))
		for i := 0; i < len(hdrs); i += 2 {
			m.check(m.s.HeaderField(hdrs[i], hdrs[i+1]))
		}
		m.check(m.s.HeaderEnd())
		for range 4 {
			m.check(m.s.BodyChunk(chunk))
		}
		mods, act, err := m.s.End()
		if err != nil || act.Code != gomilter.ActContinue || len(mods) == 0 {
			b.Fatal(act, err)
		}
		m.s.Close()
	}
}
