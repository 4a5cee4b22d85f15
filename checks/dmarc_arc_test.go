package checks

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestDMARCOverrideByTrustedARCSealer: a message from a p=reject domain
// fails DMARC after a mailing list changed it, but the list — a trusted
// sealer — saw DMARC pass: with dmarc_arc_trusted_sealers the failure is
// reported with policy.override=arc and dmarc_status = reject is false.
func TestDMARCOverrideByTrustedARCSealer(t *testing.T) {
	zone := arcZone(t)
	zone.AddRecord(resolver.Record{Name: "_dmarc.origin.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1; p=reject"}})
	zone.AddRecord(resolver.Record{Name: "origin.example", Type: resolver.TypeTXT, TXT: []string{"v=spf1 -all"}})
	list := newARCSealer(t, "lists.example", "l1")
	list.publish(zone)
	plain := []byte(arcPlainMessage)
	c, err := (&arc.Validator{DNS: zone}).Validate(context.Background(), bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := (&arc.Signer{Domain: list.domain, Selector: list.selector, Key: list.key}).Seal(plain, c,
		"lists.example; spf=pass smtp.mailfrom=origin.example; dmarc=pass (p=reject dis=none) header.from=origin.example")
	if err != nil {
		t.Fatal(err)
	}
	sealed := append([]byte(strings.Join(hs, "\r\n")+"\r\n"), plain...)

	const acls = `acl_smtp_data = d
begin acl
d:
  deny    dmarc_status = reject
          message      = rejected by DMARC: $dmarc_status_text
  accept  logwrite     = dmarc $dmarc_status: $dmarc_status_text
`
	tests := []struct {
		name     string
		trusted  string
		msg      []byte
		want     acl.Verb
		override bool
	}{
		{"no trusted sealers: the policy applies", "", sealed, acl.Deny, false},
		{"trusted list vouches", "dmarc_arc_trusted_sealers = *.example : !evil.example\n", sealed, acl.Accept, true},
		{"sealer not trusted", "dmarc_arc_trusted_sealers = forward.example\n", sealed, acl.Deny, false},
		{"no ARC chain", "dmarc_arc_trusted_sealers = lists.example\n", plain, acl.Deny, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := arcLoad(t, tt.trusted+acls)
			txn, res := arcMessageTxn(t, prog, zone, tt.msg)
			if res.Verb != tt.want {
				t.Fatalf("verdict %s %q (%v), want %s", res.Verb, res.Message, res.Err, tt.want)
			}
			var dm *acl.AuthResult
			for i := range txn.AuthResults {
				if txn.AuthResults[i].Method == "dmarc" {
					dm = &txn.AuthResults[i]
				}
			}
			if dm == nil || dm.Result != "fail" {
				t.Fatalf("dmarc A-R: %+v", txn.AuthResults)
			}
			has := false
			for _, p := range dm.Props {
				if p == (acl.AuthProp{Type: "policy", Name: "override", Value: "arc"}) {
					has = true
				}
			}
			if has != tt.override {
				t.Errorf("policy.override=arc present %v, want %v: %+v", has, tt.override, dm)
			}
			if tt.override && !strings.Contains(arcLogText(txn), "overridden by trusted ARC sealer lists.example, i=1") {
				t.Errorf("status text: %s", arcLogText(txn))
			}
		})
	}
	// The history record says when the override applied: arc_policy 0
	// (the chain's sealers are trusted), and the action the message got.
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "dmarc.dat")
		prog := arcLoad(t, "dmarc_history_file = "+path+"\n"+tt.trusted+acls)
		if err := prog.Attach(); err != nil {
			t.Fatal(err)
		}
		arcMessageTxn(t, prog, zone, tt.msg)
		prog.Detach()
		r := records(t, path)
		wantPolicy, wantAction := "arc_policy 2 ", "action 0\n"
		if tt.override {
			wantPolicy, wantAction = "arc_policy 0 ", "action 2\n"
		}
		if len(r) != 1 || !strings.Contains(r[0], "\n"+wantPolicy) || !strings.HasSuffix(r[0], wantAction) {
			t.Errorf("%s: history %q, want %q and %q", tt.name, r, wantPolicy, wantAction)
		}
	}
	if _, err := arcTryLoad("dmarc_arc_trusted_sealers = +nosuchlist\n"); err == nil || !strings.Contains(err.Error(), `no domainlist named "nosuchlist"`) {
		t.Errorf("bad list: %v", err)
	}
}
