package resolver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func TestTXTLookup(t *testing.T) {
	z := dnstest.NewZone().Add(
		`one.example.com. 300 IN TXT "v=spf1 " "ip4:192.0.2.0/24 " "-all"`,
		`two.example.com. 300 IN TXT "first"`,
		`two.example.com. 300 IN TXT "sec" "ond"`,
		"host.example.com. 300 IN A 192.0.2.1",
	)
	z.SetFault("timeout.example.com", 0, dnstest.Timeout)
	z.SetFault("servfail.example.com", 0, dnstest.ServFail)
	tests := []struct {
		name         string
		domain       string
		want         []string
		wantNotFound bool
		wantTemp     bool
		wantTimeout  bool
	}{
		{name: "strings joined", domain: "one.example.com", want: []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		{name: "one string per record", domain: "two.example.com", want: []string{"first", "second"}},
		{name: "NXDOMAIN", domain: "nx.example.com", wantNotFound: true},
		{name: "NODATA", domain: "host.example.com", wantNotFound: true},
		{name: "bad name", domain: "a..example.com", wantNotFound: true},
		{name: "timeout", domain: "timeout.example.com", wantTemp: true, wantTimeout: true},
		{name: "SERVFAIL", domain: "servfail.example.com", wantTemp: true},
	}
	lookup := resolver.TXTLookup(context.Background(), z)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookup(tt.domain)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.want != nil {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			de, ok := err.(*net.DNSError) // not errors.As: go-msgauth asserts
			if !ok {
				t.Fatalf("err = %#v, want *net.DNSError", err)
			}
			if de.IsNotFound != tt.wantNotFound || de.IsTemporary != tt.wantTemp || de.IsTimeout != tt.wantTimeout || de.Name != tt.domain {
				t.Errorf("err = %+v, want IsNotFound %v IsTemporary %v IsTimeout %v", de, tt.wantNotFound, tt.wantTemp, tt.wantTimeout)
			}
			if de.Temporary() != tt.wantTemp {
				t.Errorf("Temporary() = %v", de.Temporary())
			}
		})
	}
}

// TestTXTLookupDKIM verifies DKIM signatures made by go-msgauth with keys
// published in a Zone, asked directly or through a Resolver and a Server.
func TestTXTLookupDKIM(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const msg = "From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"
	var signed bytes.Buffer
	err = dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{
		Domain: "example.com", Selector: "sel", Signer: priv,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := base64.StdEncoding.EncodeToString(pub)
	// The key is split over two character-strings of one record.
	key := `sel._domainkey.example.com. 300 IN TXT "v=DKIM1; k=ed25519; p=` + p[:20] + `" "` + p[20:] + `"`

	tests := []struct {
		name     string
		records  []string
		fault    dnstest.Fault
		wantOK   bool
		wantTemp bool
		wantPerm bool
	}{
		{name: "key published", records: []string{key}, wantOK: true},
		{name: "timeout", records: []string{key}, fault: dnstest.Timeout, wantTemp: true},
		{name: "SERVFAIL", records: []string{key}, fault: dnstest.ServFail, wantTemp: true},
		{name: "NXDOMAIN", wantPerm: true},
		{name: "NODATA", records: []string{"sel._domainkey.example.com. 300 IN A 192.0.2.1"}, wantPerm: true},
	}
	for _, tt := range tests {
		for _, via := range []string{"Zone", "Resolver"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				z := dnstest.NewZone().Add(tt.records...)
				z.SetFault("sel._domainkey.example.com", 0, tt.fault)
				var q resolver.Querier = z
				if via == "Resolver" {
					q = newResolver(t, resolver.Options{Timeout: shortTimeout}, dnstest.NewServer(t, z).Addr())
				}
				verifs, err := dkim.VerifyWithOptions(bytes.NewReader(signed.Bytes()), &dkim.VerifyOptions{
					LookupTXT: resolver.TXTLookup(context.Background(), q),
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(verifs) != 1 {
					t.Fatalf("%d verifications, want 1", len(verifs))
				}
				v := verifs[0].Err
				if (v == nil) != tt.wantOK || dkim.IsTempFail(v) != tt.wantTemp || dkim.IsPermFail(v) != tt.wantPerm {
					t.Errorf("verification error %v: temporary %v permanent %v, want ok %v temporary %v permanent %v",
						v, dkim.IsTempFail(v), dkim.IsPermFail(v), tt.wantOK, tt.wantTemp, tt.wantPerm)
				}
			})
		}
	}
}
