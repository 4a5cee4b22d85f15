package dsninfo

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// dsn50K is a report of about 50 KB: 150 failed recipients with Exim's
// fields and the returned message's headers.
func dsn50K() string {
	var b strings.Builder
	b.WriteString("From: <>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n")
	b.WriteString("--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n")
	for i := 0; b.Len() < 48<<10; i++ {
		fmt.Fprintf(&b, "Final-Recipient: rfc822; user%d@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx%d.example.org\r\n"+
			"Remote-MTA: X-ip; [192.0.2.%d]:25\r\nDiagnostic-Code: smtp; 550 5.1.1 <user%d@example.org>: Recipient address rejected:\r\n  user unknown in virtual mailbox table\r\n\r\n", i, i, i%250, i)
	}
	b.WriteString("--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <big@example.com>\r\nFrom: a@example.com\r\nSubject: hi\r\n\r\n--B--\r\n")
	return b.String()
}

func BenchmarkParse50K(b *testing.B) {
	msg := dsn50K()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := Parse(strings.NewReader(msg), Limits{})
		if r.Kind != DSN {
			b.Fatal(r.Kind, r.Reason)
		}
	}
}

// BenchmarkHostile parses each hostile shape; the heap in use after the
// parse (live-heap/op) shows that memory stays bounded however big the
// input.
func BenchmarkHostile(b *testing.B) {
	for _, name := range hostileNames {
		msg := hostile(name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				p := NewParser(Top{ContentType: "multipart/report; report-type=delivery-status; boundary=B", NullSender: true}, Limits{})
				r := strings.NewReader(msg)
				buf := make([]byte, 64<<10)
				for {
					n, _ := r.Read(buf)
					if n == 0 {
						break
					}
					p.Write(buf[:n])
				}
				p.Close()
			}
		})
	}
}

// TestHostileMemory: parsing a 5 MB diagnostic and 10,000 recipients
// keeps no more than a few hundred KB, not the input.
func TestHostileMemory(t *testing.T) {
	for _, name := range []string{"5 MB diagnostic", "10000 recipients", "one long line", "endless header"} {
		msg := hostile(name)
		p := NewParser(Top{ContentType: "multipart/report; report-type=delivery-status; boundary=B"}, Limits{})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < len(msg); i += 64 << 10 {
			p.Write([]byte(msg[i:min(i+64<<10, len(msg))]))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		r := p.Close()
		grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		if grown > 2<<20 {
			t.Errorf("%s: heap grew by %d bytes for %d bytes of input", name, grown, len(msg))
		}
		_ = r
	}
}
