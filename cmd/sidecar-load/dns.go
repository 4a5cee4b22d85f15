package main

import (
	"fmt"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// fakeDNS is a DNS server on loopback that answers for the corpus' sender
// domains (UDP and TCP on one port), so that SPF and DMARC run without the
// network. The sidecar's resolver caches its answers: after the warm-up
// every lookup is a cache hit, as on a busy MX.
type fakeDNS struct {
	*dnstest.Server
	addr string
}

// loadZone returns the zone's records in presentation format: for each
// sender domain an SPF record (ip4:, include: and ip6: mechanisms, -all)
// and a DMARC record, and the included record.
func loadZone(domains int) []string {
	recs := []string{
		`_spf.load.example. 3600 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"`,
	}
	for i := range domains {
		d := senderDomain(i)
		recs = append(recs,
			fmt.Sprintf(`%s. 3600 IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.load.example -all"`, d),
			fmt.Sprintf(`%s. 3600 IN MX 10 mx.%s.`, d, d),
			fmt.Sprintf(`_dmarc.%s. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@%s"`, d, d),
		)
	}
	return recs
}

// startFakeDNS serves records on addr ("127.0.0.1:0" for a free port).
func startFakeDNS(addr string, records []string) (*fakeDNS, error) {
	z := dnstest.NewZone()
	for _, text := range records {
		rec, err := resolver.ParseRecord(text)
		if err != nil {
			return nil, fmt.Errorf("zone record %q: %w", text, err)
		}
		z.AddRecord(rec)
	}
	s, err := dnstest.Listen(addr, z)
	if err != nil {
		return nil, err
	}
	return &fakeDNS{Server: s, addr: s.Addr()}, nil
}
