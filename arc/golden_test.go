package arc

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenSigners seal testdata/sealed-ed25519.eml. Ed25519 signing is
// deterministic and t= is fixed, so the sealed message is reproducible.
func goldenSigners() []*Signer {
	return []*Signer{
		{Domain: "lists.example", Selector: "arc1", Key: testEdKey(21), Now: fixedNow},
		{Domain: "forward.example", Selector: "arc2", Key: testEdKey(22), Now: fixedNow},
	}
}

// TestGoldenSealedMessage keeps a two-set chain and its key records in
// testdata, for the milter and command tests that need a sealed message
// without generating keys, and to notice any change in the sealing
// output. Run with -update to rewrite them.
func TestGoldenSealedMessage(t *testing.T) {
	signers := goldenSigners()
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers...)
	var zoneText strings.Builder
	zoneText.WriteString("; Key records for sealed-ed25519.eml (arc package, golden_test.go)\n")
	for _, s := range signers {
		rr := resolver.Record{Name: s.Selector + "._domainkey." + s.Domain, Type: resolver.TypeTXT, TTL: 300,
			TXT: []string{keyRecord(t, s.Key)}}
		zoneText.WriteString(rr.String() + "\n")
	}
	emlPath := filepath.Join("testdata", "sealed-ed25519.eml")
	zonePath := filepath.Join("testdata", "sealed-ed25519.zone")
	if *update {
		if err := os.WriteFile(emlPath, msg, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(zonePath, []byte(zoneText.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eml, err := os.ReadFile(emlPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(eml) != string(msg) {
		t.Errorf("sealing output changed (run with -update if intended):\n%s", msg)
	}
	zt, err := os.ReadFile(zonePath)
	if err != nil {
		t.Fatal(err)
	}
	// The stored files validate on their own.
	z := dnstest.NewZone()
	for _, line := range strings.Split(string(zt), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
			z.Add(line)
		}
	}
	c := validate(t, &Validator{DNS: z}, eml)
	if c.State != Pass || c.OldestPass != 1 || c.DomainList() != "lists.example:forward.example" {
		t.Fatalf("golden chain: %s (%s) oldest %d domains %s", c.State, c.Reason, c.OldestPass, c.DomainList())
	}
}
