package milter

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/results"
	"github.com/mailsidecar/sidecar/spf"
)

// TestResultFieldsJSONAndText: the authentication fields of the
// transaction line, with the names the README documents, in both log
// formats; a check not made has no field.
func TestResultFieldsJSONAndText(t *testing.T) {
	txn := acl.NewTxn(&acl.Conn{ClientIP: netip.MustParseAddr("192.0.2.1")}, nil)
	txn.Headers = []acl.Header{{Name: "From", Value: " <a@example.org>"}, {Name: "Message-ID", Value: " <x1@example.org>"}}
	m := txn.Results
	m.SPF = &spf.Evaluation{Outcome: spf.Outcome{Result: spf.Pass, Domain: "example.org", Identity: spf.IdentityMailFrom}}
	m.DKIM = results.DKIM{Examined: true, Results: []dkim.Result{{Status: dkim.Pass, Domain: "example.org", Selector: "s1"},
		{Status: dkim.Fail, Domain: "list.example", Selector: "s2"}}}
	m.DMARC = &results.DMARC{Outcome: dmarc.Outcome{Result: dmarc.Pass, Policy: dmarc.PolicyReject, Disposition: dmarc.PolicyNone,
		PolicyDomain: "example.org", AlignDKIM: true}}
	m.ARC.Chain = &arc.Chain{State: arc.None}

	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).LogAttrs(context.Background(), slog.LevelInfo, "transaction", resultAttrs(txn)...)
	var got struct {
		MessageID  string `json:"message_id"`
		FromDomain string `json:"from_domain"`
		SPF        map[string]string
		DKIM       []map[string]string
		DMARC      map[string]string
		ARC        map[string]any
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, js.String())
	}
	if got.MessageID != "x1@example.org" || got.FromDomain != "example.org" || got.SPF["result"] != "pass" ||
		got.SPF["identity"] != "mailfrom" || len(got.DKIM) != 2 || got.DKIM[1]["d"] != "list.example" || got.DKIM[1]["result"] != "fail" ||
		got.DMARC["policy"] != "reject" || got.DMARC["align_dkim"] != "yes" || got.DMARC["override"] != "" || got.ARC["state"] != "none" {
		t.Errorf("JSON fields: %s", js.String())
	}

	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).LogAttrs(context.Background(), slog.LevelInfo, "transaction", resultAttrs(txn)...)
	for _, want := range []string{"message_id=x1@example.org", "spf.result=pass", `dkim="example.org:s1:pass list.example:s2:fail"`,
		"dmarc.result=pass", "dmarc.disposition=none", "arc.state=none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q: %s", want, text.String())
		}
	}

	bare := acl.NewTxn(nil, nil)
	if attrs := resultAttrs(bare); len(attrs) != 0 {
		t.Errorf("fields for checks not made: %v", attrs)
	}
}
