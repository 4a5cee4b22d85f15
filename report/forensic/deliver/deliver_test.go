package deliver

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/fakeclock"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/report/forensic"
	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/resolver"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func zone() *dnstest.Zone {
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "bank.example._report._dmarc.reports.example", Type: resolver.TypeTXT, TXT: []string{"v=DMARC1"}})
	return z
}

func entry(ruf ...string) *forensic.Entry {
	return &forensic.Entry{Created: t0, RUF: ruf, Report: forensic.Report{
		Sender: "dmarc-noreply@mx.example.net", ReportingMTA: "mx.example.net", UserAgent: "sidecar/test", Arrival: t0,
		SourceIP: "192.0.2.9", MailFrom: "spoofer@bad.example", FromDomain: "bank.example", PolicyDomain: "bank.example",
		AuthResults: "mx.example.net; dmarc=fail header.from=bank.example", FailureOption: "1", DeliveryResult: forensic.Reject,
		Header: []byte("From: alerts@bank.example\r\nSubject: hello\r\n")}}
}

type harness struct {
	spool  *forensic.Spool
	sender *Sender
	clock  *fakeclock.Clock
	mu     sync.Mutex
	events []Event
}

func newHarness(t *testing.T, smtpAddr string) *harness {
	sp, err := forensic.OpenSpool(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{spool: sp, clock: fakeclock.New(t0)}
	h.sender = &Sender{Dir: sp.Dir(), DNS: zone(), SMTP: &mailout.Client{Addr: smtpAddr, Timeout: 5 * time.Second}, Now: h.clock.Now,
		Event: func(e Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() }}
	return h
}

// results returns "uri=result" of the events so far, and forgets them.
func (h *harness) results() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.URI+"="+e.Result)
	}
	h.events = nil
	return out
}

func sinkWith(t *testing.T, rcptReply string) *testmta.Sink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return testmta.ServeSink(t, l, testmta.SinkOptions{RcptReply: rcptReply})
}

// TestPassDestinations: a destination in the policy domain and a verified
// external one get the report mail; an external one without its
// _report._dmarc record, one whose size limit the report exceeds and a
// URI that is not mailto: are dropped; the report leaves the spool.
func TestPassDestinations(t *testing.T) {
	sink := sinkWith(t, "")
	h := newHarness(t, sink.Addr())
	e := entry("mailto:ruf@bank.example", "mailto:ruf@reports.example", "mailto:ruf@unverified.example", "mailto:small@bank.example!100", "https://bank.example/ruf")
	if err := h.spool.Add(e); err != nil {
		t.Fatal(err)
	}
	if next := h.sender.Pass(context.Background(), h.spool); !next.IsZero() {
		t.Fatalf("next attempt %v, want none", next)
	}
	want := []string{"mailto:ruf@bank.example=sent", "mailto:ruf@reports.example=sent", "mailto:ruf@unverified.example=failed",
		"mailto:small@bank.example!100=failed", "https://bank.example/ruf=failed"}
	if got := h.results(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if h.spool.Len() != 0 {
		t.Fatalf("%d reports left", h.spool.Len())
	}
	for _, to := range []string{"ruf@bank.example", "ruf@reports.example"} {
		msg := <-sink.Msgs
		if !strings.Contains(msg, "To: <"+to+">") {
			t.Fatalf("mail not to %s:\n%s", to, msg)
		}
		fb, err := forensic.ParseARF(bytes.NewReader([]byte(msg)))
		if err != nil || fb.AuthFailure != "dmarc" || fb.ReportedDomain[0] != "bank.example" {
			t.Fatalf("ARF %+v, %v", fb, err)
		}
	}
}

// TestPassRetries: a 4xx reply keeps the report with its next attempt one
// minute later, then two, four…; nothing is tried before it is due; a
// server that then accepts gets it once, and it leaves the spool.
func TestPassRetries(t *testing.T) {
	later := sinkWith(t, "450 4.2.1 try later")
	h := newHarness(t, later.Addr())
	h.spool.Add(entry("mailto:ruf@bank.example", "mailto:gone@bank.example"))
	ctx := context.Background()
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		next := h.sender.Pass(ctx, h.spool)
		if !next.Equal(h.clock.Now().Add(wait)) {
			t.Fatalf("attempt %d: next %v, want in %v", i+1, next, wait)
		}
		if got := h.results(); len(got) != 2 || got[0] != "mailto:ruf@bank.example=temporary" {
			t.Fatalf("attempt %d: %q", i+1, got)
		}
		h.clock.Add(wait - time.Second)
		if h.sender.Pass(ctx, h.spool); len(h.results()) != 0 {
			t.Fatal("tried before it was due")
		}
		h.clock.Add(time.Second)
	}
	ids, _ := h.spool.IDs()
	e, _ := h.spool.Load(ids[0])
	if e.Attempts != 3 || len(e.RUF) != 2 {
		t.Fatalf("entry after 3 attempts: %d attempts, ruf %q", e.Attempts, e.RUF)
	}
	ok := sinkWith(t, "")
	h.sender.SMTP.Addr = ok.Addr()
	h.sender.Pass(ctx, h.spool)
	if got := h.results(); !slices.Equal(got, []string{"mailto:ruf@bank.example=sent", "mailto:gone@bank.example=sent"}) || h.spool.Len() != 0 {
		t.Fatalf("%q, %d left", got, h.spool.Len())
	}
}

// TestPassPermanentAndExpired: a 5xx reply drops the destination at
// once; a report still failing temporarily two days after it was spooled
// is dropped (expired); an unreachable server is a temporary failure.
func TestPassPermanentAndExpired(t *testing.T) {
	h := newHarness(t, sinkWith(t, "550 5.1.1 no such user").Addr())
	h.spool.Add(entry("mailto:ruf@bank.example"))
	h.sender.Pass(context.Background(), h.spool)
	if got := h.results(); !slices.Equal(got, []string{"mailto:ruf@bank.example=failed"}) || h.spool.Len() != 0 {
		t.Fatalf("5xx: %q, %d left", got, h.spool.Len())
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	h = newHarness(t, addr)
	h.spool.Add(entry("mailto:ruf@bank.example"))
	h.sender.Pass(context.Background(), h.spool)
	if got := h.results(); !slices.Equal(got, []string{"mailto:ruf@bank.example=temporary"}) || h.spool.Len() != 1 {
		t.Fatalf("unreachable: %q, %d left", got, h.spool.Len())
	}
	h.clock.Add(DefaultMaxAge)
	h.sender.Pass(context.Background(), h.spool)
	if got := h.results(); !slices.Equal(got, []string{"mailto:ruf@bank.example=temporary", "mailto:ruf@bank.example=expired"}) || h.spool.Len() != 0 {
		t.Fatalf("expired: %q, %d left", got, h.spool.Len())
	}
}

// TestRunWakesOnSpool: the running sender sends a report as soon as it is
// spooled, without waiting for its poll, and stops with its context.
func TestRunWakesOnSpool(t *testing.T) {
	sink := sinkWith(t, "")
	h := newHarness(t, sink.Addr())
	h.sender.Now, h.sender.Poll = nil, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.sender.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond)
	e := entry("mailto:ruf@bank.example")
	e.Created = time.Now()
	h.spool.Add(e)
	select {
	case msg := <-sink.Msgs:
		if !strings.Contains(msg, "Feedback-Type: auth-failure") {
			t.Fatalf("mail:\n%s", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the report was not sent")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}
