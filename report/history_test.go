package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// txtZone is a zone with one TXT record (none when name is "").
func txtZone(name, text string) *dnstest.Zone {
	z := dnstest.NewZone()
	if name != "" {
		z.AddRecord(resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: []string{text}})
	}
	return z
}

// observed is the record opendmarc-history.md shows OpenDMARC 1.4.2
// writing for an opendkim-signed message from an SPF-failing IP.
const observed = `job 4Pipe11D6D987
reporter mx.test.example
received 1795422698
ipaddr 203.0.113.5
from example.com
mfrom example.com
dkim example.com sel1 0
spf 7
pdomain example.com
policy 15
rua mailto:dmarc-agg@example.com
pct 100
adkim 114
aspf 114
p 114
sp 0
align_dkim 4
align_spf 5
arc 7
arc_policy 2 json:[]
action 2
`

// observedMessage is the record of the observed message (an
// opendkim-signed message from an SPF-failing IP) under the DMARC record
// text of example.com, and the evaluation.
func observedMessage(record string) (*HistoryRecord, dmarc.Outcome) {
	in := dmarc.Input{FromDomain: "example.com", SPF: dmarc.SPFResult{Result: "fail", Domain: "example.com"},
		DKIM: []dmarc.DKIMResult{{Result: "pass", Domain: "example.com", Selector: "sel1"}}}
	o := (&dmarc.Evaluator{DNS: txtZone("_dmarc.example.com", record)}).Evaluate(context.Background(), in)
	h := NewHistoryRecord(in, o)
	h.JobID, h.Reporter, h.Received, h.IPAddr, h.MailFrom = "4Pipe11D6D987", "mx.test.example", time.Unix(1795422698, 0), "203.0.113.5", "example.com"
	return h, o
}

func TestHistoryObservedRecord(t *testing.T) {
	h, _ := observedMessage("v=DMARC1; p=reject; rua=mailto:dmarc-agg@example.com")
	var b bytes.Buffer
	if err := h.Format(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != observed {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), observed)
	}
}

func TestHistoryNoRecord(t *testing.T) {
	o := (&dmarc.Evaluator{DNS: txtZone("", "")}).Evaluate(context.Background(), dmarc.Input{FromDomain: "example.net", SPF: dmarc.SPFResult{Result: "none", Domain: ""}})
	h := NewHistoryRecord(dmarc.Input{SPF: dmarc.SPFResult{Result: "none", Domain: ""}}, o)
	h.Received = time.Unix(1700000000, 0)
	want := "job (unknown-jobid)\nreporter \nreceived 1700000000\nipaddr \nfrom example.net\nmfrom \n" +
		"spf 6\npdomain example.net\npolicy 14\nrua -\npct 0\nadkim 0\naspf 0\np 0\nsp 0\n" +
		"align_dkim 0\nalign_spf 0\narc 7\narc_policy 2 json:[]\naction 2\n"
	if got := string(h.AppendFormat(nil)); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

func TestHistoryAllFields(t *testing.T) {
	h := &HistoryRecord{
		JobID: "4XyZ 1\n", Reporter: "mx.example.org", Received: time.Unix(1, 0), IPAddr: "2001:db8::1",
		From: "example.com", MailFrom: "",
		DKIM:         []HistoryDKIM{{"example.com", "s1", ARESPass}, {"evil.example", "", ARESPermError}},
		SPF:          ARESUndefined,
		PolicyDomain: "example.com", Policy: HistoryPolicyQuarantine,
		RUA: []string{"mailto:a@example.com", "mailto:b@example.net!10m"}, Pct: 50,
		ADKIM: 's', ASPF: 'r', P: 'q', SP: 'n', AlignDKIM: HistoryAlignFail, AlignSPF: HistoryAlignNoRecord,
		ARC: ARESPass, ARCPolicy: 0,
		ARCSeals: []ARCSeal{{1, "lists.example.net", "arc1", ""}, {2, `we"ird`, "s\\", "192.0.2.1"}},
		Action:   HistoryActionQuarantine,
	}
	want := "job 4XyZ_1_\nreporter mx.example.org\nreceived 1\nipaddr 2001:db8::1\nfrom example.com\nmfrom \n" +
		"dkim example.com s1 0\ndkim evil.example - 5\nspf -1\npdomain example.com\npolicy 17\n" +
		"rua mailto:a@example.com\nrua mailto:b@example.net!10m\npct 50\nadkim 115\naspf 114\np 113\nsp 110\n" +
		"align_dkim 5\nalign_spf 0\narc 0\n" +
		`arc_policy 0 json:[{ "i": 1, "d":"lists.example.net", "s":"arc1", "ip":"" }, { "i": 2, "d":"we\"ird", "s":"s\\", "ip":"192.0.2.1" }]` + "\n" +
		"action 4\n"
	if got := string(h.AppendFormat(nil)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestHistoryCodes(t *testing.T) {
	z := txtZone("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=reject; adkim=s; pct=40")
	e := &dmarc.Evaluator{DNS: z, Rand: func(int) int { return 0 }}
	in := dmarc.Input{FromDomain: "example.com", SPF: dmarc.SPFResult{Result: "pass", Domain: "example.com"}, DKIM: []dmarc.DKIMResult{{Result: "fail", Domain: "example.com", Selector: "x"}}}
	o := e.Evaluate(context.Background(), in)
	h := NewHistoryRecord(in, o)
	if h.Policy != HistoryPolicyPass || h.P != 'q' || h.SP != 'r' || h.ADKIM != 's' || h.ASPF != 'r' || h.Pct != 40 ||
		h.AlignSPF != HistoryAlignPass || h.AlignDKIM != HistoryAlignFail || h.SPF != ARESPass || h.DKIM[0].Result != ARESFail {
		t.Errorf("%+v", h)
	}
	in.SPF.Result = "softfail"
	o = e.Evaluate(context.Background(), in)
	o.Action = dmarc.PolicyQuarantine
	h = NewHistoryRecord(in, o)
	if h.Policy != HistoryPolicyQuarantine || h.Action != HistoryActionQuarantine || h.SPF != ARESSoftFail {
		t.Errorf("%+v", h)
	}
	o = (&dmarc.Evaluator{DNS: txtZone("", "")}).Evaluate(context.Background(), dmarc.Input{FromErr: dmarc.ErrNoFrom})
	if h := NewHistoryRecord(dmarc.Input{}, o); h.Policy != HistoryPolicyNoFrom || h.SPF != ARESUndefined {
		t.Errorf("nofrom: %+v", h)
	}
	for tok, code := range map[string]ARES{"PASS": 0, "softfail": 2, "neutral": 3, "temperror": 4, "permerror": 5,
		"none": 6, "fail": 7, "policy": 8, "": -1, "bogus": -1} {
		if ARESCode(tok) != code {
			t.Errorf("ARESCode(%q) = %d", tok, ARESCode(tok))
		}
	}
}

func TestHistoryFileConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dmarc.dat")
	hf, err := OpenHistoryFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h := &HistoryRecord{JobID: fmt.Sprintf("w%d-%d", w, i), Reporter: "mx", Received: time.Unix(1, 0),
					From: "example.com", PolicyDomain: "example.com", Policy: HistoryPolicyAbsent,
					RUA: []string{strings.Repeat("x", 3000)}, ARC: ARESFail, ARCPolicy: 2, Action: HistoryActionAccept}
				if err := hf.Append(h); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	records := strings.Split(string(data), "job ")[1:]
	if len(records) != writers*each {
		t.Fatalf("%d records, want %d", len(records), writers*each)
	}
	for _, r := range records {
		lines := strings.Split(strings.TrimSuffix(r, "\n"), "\n")
		if len(lines) != 20 || !strings.HasPrefix(lines[1], "reporter mx") || lines[19] != "action 2" {
			t.Fatalf("interleaved or damaged record:\n%.300s", r)
		}
	}
}

func TestHistoryFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dmarc.dat")
	hf, err := OpenHistoryFile(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	hf.Now = func() time.Time { return now }
	rec := func(job string) *HistoryRecord {
		return &HistoryRecord{JobID: job, From: "example.com", ARC: ARESFail, ARCPolicy: 2, Action: HistoryActionAccept}
	}
	if err := hf.Append(rec("one")); err != nil {
		t.Fatal(err)
	}
	// opendmarc-importstats: mv the file away, import it, delete it,
	// without telling the writer.
	old := path + ".OLD.1234"
	if err := os.Rename(path, old); err != nil {
		t.Fatal(err)
	}
	if err := hf.Append(rec("two")); err != nil {
		t.Fatal(err)
	}
	oldData, _ := os.ReadFile(old)
	newData, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(oldData), "job one\n") || strings.Contains(string(oldData), "job two") {
		t.Errorf("renamed file: %q", oldData)
	}
	if !strings.HasPrefix(string(newData), "job two\n") || !strings.Contains(string(newData), "received 1700000000\n") {
		t.Errorf("new file: %q", newData)
	}
	// Replaced by another file: followed too.
	os.Remove(path)
	os.WriteFile(path, []byte("job zero\n"), 0o600)
	hf.Append(rec("three"))
	if data, _ := os.ReadFile(path); !strings.HasPrefix(string(data), "job zero\njob three\n") {
		t.Errorf("replaced file: %q", data)
	}
	if err := hf.Reopen(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("reopen changed the file: %v %v", st.Mode(), err)
	}
	if err := hf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hf.Append(rec("four")); err != ErrHistoryClosed {
		t.Errorf("Append after Close: %v", err)
	}
	if err := hf.Reopen(); err != ErrHistoryClosed {
		t.Errorf("Reopen after Close: %v", err)
	}
}

func TestHistoryFileCreateMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.dat")
	hf, err := OpenHistoryFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&^HistoryFileMode != 0 {
		t.Errorf("mode %v, err %v", st.Mode(), err)
	}
	if hf.Path() != path {
		t.Error("Path")
	}
	if _, err := OpenHistoryFile(filepath.Join(path, "sub")); err == nil {
		t.Error("opening below a file succeeded")
	}
}

// The sidecar format: OpenDMARC's record unchanged, then the extension's
// keys, every one of them, "-" for an empty value.
func TestHistorySidecarFormat(t *testing.T) {
	h, o := observedMessage("v=DMARC1; p=reject; np=quarantine; psd=n; t=y; fo=d:s; rua=mailto:dmarc-agg@example.com; ruf=mailto:f@example.com,mailto:g@example.net")
	opendmarc := string(h.AppendFormat(nil))
	h.Ext = ExtFromOutcome(o)
	h.Ext.SPFDomain, h.Ext.SPFScope = "example.com", SPFScopeMailFrom
	h.Ext.RcptDomains = []string{"example.org", "example.net"}
	h.Ext.Override = []OverrideReason{OverrideLocalPolicy}
	want := opendmarc + `spf_domain example.com
spf_scope mfrom
rcpt_domain example.org
rcpt_domain example.net
np 113
psd 110
t 121
fo d:s
ruf mailto:f@example.com
ruf mailto:g@example.net
override local_policy
`
	if got := string(h.AppendFormat(nil)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Without a record, and nothing to say: every key, "-" or 0.
	h.Ext = ExtFromOutcome(dmarc.Outcome{})
	wantEmpty := opendmarc + "spf_domain -\nspf_scope -\nrcpt_domain -\nnp 0\npsd 0\nt 0\nfo -\nruf -\noverride -\n"
	if got := string(h.AppendFormat(nil)); got != wantEmpty {
		t.Errorf("got:\n%s\nwant:\n%s", got, wantEmpty)
	}
	// Defaults of a record that publishes none of the tags.
	_, o = observedMessage("v=DMARC1; p=none")
	if x := ExtFromOutcome(o); x.NP != 0 || x.PSD != 'u' || x.Testing != 'n' || x.FO != "0" || len(x.RUF) != 0 {
		t.Errorf("defaults %+v", x)
	}
}
