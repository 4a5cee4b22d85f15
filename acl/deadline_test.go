package acl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fanOutConfig is an ACL that calls itself out levels deep, each level
// calling the next calls times: calls^levels runs of the last one.
func fanOutConfig(timeout string, levels, calls int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "acl_timeout = %s\nacl_smtp_connect = l0\nbegin acl\n", timeout)
	for i := 0; i < levels; i++ {
		fmt.Fprintf(&b, "l%d:\n", i)
		for j := 0; j < calls; j++ {
			fmt.Fprintf(&b, "  warn acl = l%d\n", i+1)
		}
		b.WriteString("  accept\n")
	}
	fmt.Fprintf(&b, "l%d:\n  accept condition = ${if eq{$sender_host_address}{192.0.2.99}}\n  deny\n", levels)
	return b.String()
}

// runWithin runs the stage's ACL and fails the test when the run has not
// returned within limit (the run goes on in the background).
func runWithin(t *testing.T, limit time.Duration, run func() Result) Result {
	t.Helper()
	done := make(chan Result, 1)
	start := time.Now()
	go func() { done <- run() }()
	select {
	case res := <-done:
		t.Logf("returned after %v", time.Since(start).Round(time.Millisecond))
		return res
	case <-time.After(limit):
		t.Fatalf("the run was still going after %v", limit)
	}
	return Result{}
}

// TestDeadlineStopsACLFanOut: 10 levels of 10 "acl =" calls each do no
// waiting at all, yet the run stops at its deadline, acl_timeout or the
// caller's (the stage timeout), with defer and the place it was.
func TestDeadlineStopsACLFanOut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		aclTimeout string
		stage      time.Duration // the caller's deadline; 0: none
	}{
		{"acl_timeout", "300ms", 0},
		{"stage timeout", "0s", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, fanOutConfig(tc.aclTimeout, 10, 10), nil)
			ctx := context.Background()
			if tc.stage > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.stage)
				defer cancel()
			}
			txn := newTxn("192.0.2.1")
			res := runWithin(t, 5*time.Second, func() Result { return p.Run(ctx, Connect, txn) })
			if res.Verb != Defer {
				t.Fatalf("verdict %s, want defer", res.Verb)
			}
			if !errors.Is(res.Err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", res.Err)
			}
			if res.ACL != "l0" || !res.Pos.IsValid() {
				t.Errorf("decided by %q at %s, want l0 and a position", res.ACL, res.Pos)
			}
			// The error says which ACL was running, and where.
			if !strings.Contains(res.Err.Error(), "ran past its deadline") || !strings.Contains(res.Err.Error(), "test.conf:") {
				t.Errorf("error does not say where the run was: %v", res.Err)
			}
			// warn statements do not go on logging once the deadline passed.
			if len(txn.Logs) > 2*10 {
				t.Errorf("%d log lines after the deadline", len(txn.Logs))
			}
		})
	}
}

// TestDeadlineStopsLongExpansion: an expansion that loops long (nested
// ${sg}, 30^8 matches, no output) in a condition defers at acl_timeout.
func TestDeadlineStopsLongExpansion(t *testing.T) {
	sg := "{${length_0:$sender_host_address}}" // not constant: not folded by Compile
	for i := 0; i < 8; i++ {
		sg = "{${sg{" + strings.Repeat("x", 30) + "}{x}" + sg + "}}"
	}
	text := "acl_timeout = 300ms\nacl_smtp_connect = c\nbegin acl\nc:\n  accept condition = ${if eq{" + sg[1:len(sg)-1] + "}{}{no}{no}}\n  deny\n"
	p := compile(t, text, nil)
	res := runWithin(t, 5*time.Second, func() Result { return p.Run(context.Background(), Connect, newTxn("192.0.2.1")) })
	if res.Verb != Defer || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("verdict %s, error %v; want defer after the deadline", res.Verb, res.Err)
	}
	if res.Pos.Line != 5 {
		t.Errorf("position %s, want line 5", res.Pos)
	}
}
