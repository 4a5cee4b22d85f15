package tlsrpt

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name, txt string
		want      []string // the rua URIs; nil: an error
	}{
		{"mailto", "v=TLSRPTv1; rua=mailto:tlsrpt@example.net", []string{"mailto:tlsrpt@example.net"}},
		{"https", "v=TLSRPTv1;rua=https://reporting.example.net/v1/tlsrpt", []string{"https://reporting.example.net/v1/tlsrpt"}},
		{"both with spaces", "v=TLSRPTv1 ; rua=mailto:a@example.net , https://r.example.net/x ;", []string{"mailto:a@example.net", "https://r.example.net/x"}},
		{"extension ignored", "v=TLSRPTv1; ext_1=yes; rua=mailto:a@example.net", []string{"mailto:a@example.net"}},
		{"other scheme left out", "v=TLSRPTv1; rua=ftp://x.example, mailto:a@example.net", []string{"mailto:a@example.net"}},
		{"query with =", "v=TLSRPTv1; rua=https://r.example.net/x?d=1", []string{"https://r.example.net/x?d=1"}},
		{"escaped mailto", "v=TLSRPTv1; rua=mailto:tls%2Brpt@example.net", []string{"mailto:tls%2Brpt@example.net"}},
		{"no rua", "v=TLSRPTv1; ext=1", nil},
		{"empty rua", "v=TLSRPTv1; rua=", nil},
		{"only other schemes", "v=TLSRPTv1; rua=ftp://x.example", nil},
		{"rua twice", "v=TLSRPTv1; rua=mailto:a@example.net; rua=mailto:b@example.net", nil},
		{"wrong version", "v=TLSRPTv2; rua=mailto:a@example.net", nil},
		{"version case", "V=tlsrptv1; rua=mailto:a@example.net", nil},
		{"version only", "v=TLSRPTv1;", nil},
		{"field without =", "v=TLSRPTv1; rua=mailto:a@example.net; junk", nil},
		{"ext value with =", "v=TLSRPTv1; rua=mailto:a@example.net; x=a=b", nil},
		{"ext name too long", "v=TLSRPTv1; rua=mailto:a@example.net; " + strings.Repeat("x", 33) + "=1", nil},
		{"bad mailto", "v=TLSRPTv1; rua=mailto:not an address", nil},
		{"mailto two addresses", "v=TLSRPTv1; rua=mailto:a@example.net%2Cb@example.net", nil},
		{"mailto with name", "v=TLSRPTv1; rua=mailto:A<a@example.net>", nil},
		{"https without host", "v=TLSRPTv1; rua=https:/x", nil},
		{"https with user", "v=TLSRPTv1; rua=https://u:p@r.example.net/", nil},
		{"no scheme", "v=TLSRPTv1; rua=a@example.net", nil},
		{"control char", "v=TLSRPTv1; rua=mailto:a@example.net\x01", nil},
		{"too many", "v=TLSRPTv1; rua=" + strings.Repeat("mailto:a@example.net,", MaxRUA) + "mailto:a@example.net", nil},
		{"too long", "v=TLSRPTv1; rua=mailto:a@example.net; x=" + strings.Repeat("a", MaxRecordLen), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseRecord(tt.txt)
			if tt.want == nil {
				if !errors.Is(err, ErrBadRecord) {
					t.Fatalf("ParseRecord(%q) = %v, %v; want ErrBadRecord", tt.txt, rec.RUA, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range rec.RUA {
				got = append(got, u.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("rua = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	z := dnstest.NewZone().Add(
		`_smtp._tls.one.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@one.example"`,
		`_smtp._tls.split.example. 300 IN TXT "v=TLSRPTv1; " "rua=https://r.split.example/"`,
		`_smtp._tls.two.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:a@two.example"`,
		`_smtp._tls.two.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:b@two.example"`,
		`_smtp._tls.other.example. 300 IN TXT "v=spf1 -all"`,
		`_smtp._tls.mixed.example. 300 IN TXT "v=spf1 -all"`,
		`_smtp._tls.mixed.example. 300 IN TXT "v=TLSRPTv1;rua=mailto:m@mixed.example"`,
		`_smtp._tls.bad.example. 300 IN TXT "v=TLSRPTv1; rua=gopher://x"`,
	).SetFault("_smtp._tls.down.example", resolver.TypeTXT, dnstest.ServFail)
	q := dnstest.NewResolver(t, z)
	tests := []struct {
		domain, want string
		err          error
	}{
		{"one.example", "mailto:tlsrpt@one.example", nil},
		{"split.example", "https://r.split.example/", nil},
		{"mixed.example", "mailto:m@mixed.example", nil},
		{"two.example", "", ErrNoRecord},
		{"other.example", "", ErrNoRecord},
		{"absent.example", "", ErrNoRecord},
		{"bad.example", "", ErrBadRecord},
		{"down.example", "", resolver.ErrTemporary},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			rec, err := Discover(context.Background(), q, tt.domain)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Discover = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || len(rec.RUA) != 1 || rec.RUA[0].String() != tt.want {
				t.Fatalf("Discover = %v, %v; want %s", rec.RUA, err, tt.want)
			}
		})
	}
}
