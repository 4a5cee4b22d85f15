package checks

import (
	"testing"

	"github.com/mailsidecar/sidecar/acl"
)

// BenchmarkDSNHookOrdinary is what the DSN body hook costs an ordinary
// message (a sender, ten header fields, text/plain): one look through
// the field names, no parser started.
func BenchmarkDSNHookOrdinary(b *testing.B) {
	t := acl.NewTxn(&acl.Conn{}, nil)
	t.HasSender, t.Sender = true, "alice@example.com"
	for _, n := range []string{"Received", "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "DKIM-Signature", "X-Mailer"} {
		t.Headers = append(t.Headers, acl.Header{Name: n, Value: " text/plain; charset=utf-8"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if StartDSN(t) != nil {
			b.Fatal("ordinary mail parsed")
		}
	}
}

// TestDSNHookStarts: the hook starts for a null sender and for a
// multipart/report, and not for other mail.
func TestDSNHookStarts(t *testing.T) {
	for _, tc := range []struct {
		sender, ctype string
		want          bool
	}{
		{"", "text/plain", true},
		{"alice@example.com", "Multipart/Report; report-type=delivery-status; boundary=x", true},
		{"alice@example.com", "multipart/mixed; boundary=x", false},
		{"alice@example.com", "", false},
	} {
		txn := acl.NewTxn(&acl.Conn{}, nil)
		txn.HasSender, txn.Sender = true, tc.sender
		txn.Headers = []acl.Header{{Name: "content-type", Value: " " + tc.ctype}}
		if got := StartDSN(txn) != nil; got != tc.want {
			t.Errorf("sender %q, Content-Type %q: started %v, want %v", tc.sender, tc.ctype, got, tc.want)
		}
	}
}
