package milter

import (
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// stageClock records the stage timings and ended messages it hears of.
type stageClock struct {
	mu     sync.Mutex
	stages []acl.Stage
	took   []time.Duration
	ended  int
}

func (c *stageClock) StageDone(st acl.Stage, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stages = append(c.stages, st)
	c.took = append(c.took, took)
}

func (c *stageClock) MessageEnded(*acl.Txn, acl.Ending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended++
}

// TestStageTimedOnTheWire: each stage the MTA sends is timed once, by
// the milter, from its packet to the reply written (the driver's own
// timings are not passed on), and a slow DATA ACL shows in the end of
// message's time.
func TestStageTimedOnTheWire(t *testing.T) {
	clock := &stageClock{}
	h := newHarness(t, "acl_smtp_rcpt = r\nacl_smtp_data = d\nbegin acl\nr:\n  deny local_parts = nobody\n  accept\n"+
		"d:\n  accept delay = 30ms\n", func(e *Env) { e.Observer = clock })
	m := h.mta()
	m.connect("client.example", gomilter.FamilyInet, "192.0.2.10")
	m.helo("client.example")
	m.mail("<a@example.org>", "Q1")
	m.rcpt("<nobody@example.net>")
	m.rcpt("<b@example.net>")
	m.data([]string{"From", " a@example.org"}, "hi\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		clock.mu.Lock()
		n := len(clock.stages)
		clock.mu.Unlock()
		if n >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	clock.mu.Lock()
	defer clock.mu.Unlock()
	want := []acl.Stage{acl.Connect, acl.Helo, acl.Mail, acl.Rcpt, acl.Rcpt, acl.Data}
	if len(clock.stages) != len(want) {
		t.Fatalf("stages timed %v, want %v", clock.stages, want)
	}
	for i, st := range want {
		if clock.stages[i] != st {
			t.Fatalf("stages timed %v, want %v", clock.stages, want)
		}
	}
	if d := clock.took[5]; d < 30*time.Millisecond || d > 5*time.Second {
		t.Errorf("end of message timed %v, want the 30ms delay and more", d)
	}
	if clock.ended != 1 {
		t.Errorf("%d messages ended, want 1", clock.ended)
	}
}
