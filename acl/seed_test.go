package acl

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
)

// The DMARC "Example usage" of seed 001_48bb758177c472e2.txt, as written,
// inside the lists and ACL names it needs. dmarc_status and its variables
// and controls belong to the DMARC feature; here a test registry stands in
// for it, which is what the registry is for.
var seedDMARC = readSeed("../testdata/seed-dmarc-example.conf")

type fakeDMARC struct{ status, domain, policy string }

// fakeDMARCs holds the fake DMARC state of each test transaction.
var fakeDMARCs sync.Map // *Txn → fakeDMARC

func dmarcRegistry() *Registry {
	reg := NewRegistry()
	get := func(t *Txn) fakeDMARC {
		if _, off := t.Control("dmarc_disable_verify"); off {
			return fakeDMARC{status: "off"}
		}
		v, _ := fakeDMARCs.Load(t)
		d, _ := v.(fakeDMARC)
		return d
	}
	reg.Condition(CondDef{Name: "dmarc_status", Stages: OnlyData, Compile: func(cc *CondCompile) (CondFunc, error) {
		match, err := cc.ResultList([]string{"accept", "reject", "quarantine", "none", "norecord", "nofrom", "temperror", "off"}, nil)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, t *Txn) (bool, error) { return match(ctx, t, get(t).status) }, nil
	}})
	for name, f := range map[string]func(fakeDMARC) string{
		"dmarc_status":        func(d fakeDMARC) string { return d.status },
		"dmarc_used_domain":   func(d fakeDMARC) string { return d.domain },
		"dmarc_domain_policy": func(d fakeDMARC) string { return d.policy },
		"dmarc_ar_header":     func(d fakeDMARC) string { return "Authentication-Results: mx; dmarc=" + d.status },
	} {
		reg.Variable(VarDef{Name: name, Stages: OnlyData, Get: func(_ context.Context, t *Txn) (string, error) { return f(get(t)), nil }})
	}
	reg.Control(ControlDef{Name: "dmarc_disable_verify", Stages: Of(Connect, Helo, Mail, Rcpt)})
	reg.Control(ControlDef{Name: "dmarc_enable_forensic", Stages: Of(Connect, Helo, Mail, Rcpt)})
	return reg
}

func seedTxn(status, policy string) *Txn {
	txn := newTxn("192.0.2.1")
	txn.HasSender, txn.Sender = true, "alice@sender.example"
	txn.Recipients = []string{"bob@example.org"}
	fakeDMARCs.Store(txn, fakeDMARC{status: status, domain: "sender.example", policy: policy})
	return txn
}

func TestSeedDMARCExample(t *testing.T) {
	p := compile(t, seedDMARC, dmarcRegistry())
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Msg, "invalid \"condition\" value") {
		t.Errorf("want one warning about the placeholder condition, got %v", p.Warnings)
	}
	tests := []struct {
		status, policy string
		want           Verb
		message        string
		logs           string
	}{
		{"accept", "reject", Accept, "", "DMARC DEBUG: accept sender.example"},
		{"none", "none", Accept, "", "DMARC DEBUG: none sender.example|DMARC DEBUG: 'none' for sender.example"},
		{"quarantine", "quarantine", Accept, "", "DMARC DEBUG: 'quarantine' for sender.example"},
		{"reject", "reject", Deny, "Message from sender.example failed sender's DMARC policy, REJECT", "DMARC DEBUG: 'reject' for sender.example"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			txn := seedTxn(tt.status, tt.policy)
			res := p.Run(context.Background(), Data, txn)
			if res.Verb != tt.want || res.Message != tt.message {
				t.Fatalf("got %s %q (%v), want %s %q", res.Verb, res.Message, res.Err, tt.want, tt.message)
			}
			var logs []string
			for _, l := range txn.Logs {
				logs = append(logs, l.Text)
			}
			if got := strings.Join(logs, "|"); got != tt.logs {
				t.Errorf("logs %q, want %q", got, tt.logs)
			}
			if tt.status == "quarantine" && slot(txn.Vars, p.varsM["acl_m_quarantine"]) != "1" {
				t.Errorf("acl_m_quarantine not set")
			}
		})
	}
	// The RCPT ACL: the placeholder condition defers on its warn statement,
	// is logged, and the ACL goes on to accept; local domains from local
	// hosts disable DMARC.
	txn := newTxn("127.0.0.1")
	txn.Rcpt = "bob@example.org"
	res := p.Run(context.Background(), Rcpt, txn)
	if res.Verb != Accept {
		t.Fatalf("rcpt: %s", res.Verb)
	}
	if _, ok := txn.Control("dmarc_disable_verify"); !ok {
		t.Errorf("dmarc_disable_verify not set for a local host and domain")
	}
	if _, ok := txn.Control("dmarc_enable_forensic"); !ok {
		t.Errorf("dmarc_enable_forensic not set")
	}
	if len(txn.Logs) != 1 || txn.Logs[0].Kind != "error" {
		t.Errorf("want the placeholder condition's error logged, got %+v", txn.Logs)
	}
	txn.Stage = Data
	if res := p.Run(context.Background(), Data, txn); res.Verb != Accept {
		t.Errorf("DMARC off must not reject: %s", res.Verb)
	}
}

func TestSeedDMARCExampleStageErrors(t *testing.T) {
	// The seed says the controls "must appear before the DATA acl".
	text := strings.Replace(seedDMARC, "  warn    dmarc_status   = quarantine\n", "  warn    control = dmarc_enable_forensic\n  warn    dmarc_status   = quarantine\n", 1)
	errs := compileErrors(t, text, dmarcRegistry())
	if len(errs) != 1 || !strings.Contains(errs[0], `control "dmarc_enable_forensic" cannot be used in ACL "acl_check_data", which runs at DATA`) {
		t.Errorf("errors: %q", errs)
	}
}

func BenchmarkSeedDMARCExample(b *testing.B) {
	p := compile(b, seedDMARC, dmarcRegistry())
	txn := seedTxn("reject", "reject")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		txn.Logs = txn.Logs[:0]
		txn.AddHeaders = txn.AddHeaders[:0]
		if res := p.Run(ctx, Data, txn); res.Verb != Deny {
			b.Fatal(res.Verb)
		}
	}
}

func BenchmarkSeedDMARCExampleAccept(b *testing.B) {
	p := compile(b, seedDMARC, dmarcRegistry())
	txn := seedTxn("accept", "none")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		txn.Logs = txn.Logs[:0]
		txn.AddHeaders = txn.AddHeaders[:0]
		if res := p.Run(ctx, Data, txn); res.Verb != Accept {
			b.Fatal(res.Verb)
		}
	}
}

// readSeed reads the seed's DMARC example configuration shared by the tests.
func readSeed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}
