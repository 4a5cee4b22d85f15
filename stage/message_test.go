package stage

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
)

func declining(name string) acl.BodyHook {
	return acl.BodyHook{Name: name, Start: func(*acl.Txn) acl.BodyWriter { return nil }}
}

// Ordinary mail goes past every body hook (DKIM, ARC, DSN…); a hook with
// nothing to do for the message costs it no allocation.
func TestDecliningBodyHooksAllocateNothing(t *testing.T) {
	d := New(&Env{BodyHooks: []acl.BodyHook{declining("dkim"), declining("arc"), declining("dsn")}})
	if n := testing.AllocsPerRun(100, func() {
		d.Msg.bodyStarted = false
		d.EndOfHeader()
	}); n != 0 {
		t.Errorf("%v allocations to start three declining body hooks, want 0", n)
	}
	if d.Msg.writers != nil || d.Msg.Failure != nil {
		t.Errorf("writers %v, failure %v", d.Msg.writers, d.Msg.Failure)
	}
}

// A hook that panics fails the message, named in the failure; the others
// still start.
func TestBodyHookPanicNamed(t *testing.T) {
	started := false
	d := New(&Env{BodyHooks: []acl.BodyHook{
		{Name: "dsn", Start: func(*acl.Txn) acl.BodyWriter { panic("boom") }},
		{Name: "after", Start: func(*acl.Txn) acl.BodyWriter { started = true; return nil }},
	}})
	d.EndOfHeader()
	if d.Msg.Failure == nil || !strings.Contains(d.Msg.Failure.Error(), "body hook dsn: boom") || !started {
		t.Errorf("failure %v, next hook started %v", d.Msg.Failure, started)
	}
}

// A transaction whose commands give no ESMTP parameters has no Params
// (nothing allocated for them); one that does keeps them per recipient.
func TestESMTPParamsKept(t *testing.T) {
	ctx := context.Background()
	d := New(nil)
	d.Mail(ctx, "alice@example.com", "Q1")
	d.Rcpt(ctx, "bob@example.org")
	if d.Txn.Params != nil {
		t.Fatalf("Params %+v for a transaction without parameters", d.Txn.Params)
	}
	d.Mail(ctx, "alice@example.com", "Q2", "RET=HDRS")
	d.Rcpt(ctx, "bob@example.org")
	d.Rcpt(ctx, "carol@example.org", "NOTIFY=NEVER")
	d.Rcpt(ctx, "dave@example.org")
	got := d.Txn.RecipientParams()
	if strings.Join(d.Txn.MailParams(), " ") != "RET=HDRS" || len(got) != 3 || got[0] != nil || strings.Join(got[1], " ") != "NOTIFY=NEVER" || got[2] != nil ||
		d.Txn.RcptParams() != nil {
		t.Errorf("mail %q, recipients %q, rcpt %q", d.Txn.MailParams(), got, d.Txn.RcptParams())
	}
}

// Header values are kept with CRLF line breaks: bare LF become CRLF, and
// a value already in CRLF form is the caller's string, not a copy.
func TestHeaderLineBreaks(t *testing.T) {
	tests := []struct{ in, want string }{
		{" plain", " plain"},
		{" folded\r\n\tline", " folded\r\n\tline"},
		{" folded\n\tline", " folded\r\n\tline"},
		{" mixed\r\n\ta\n\tb", " mixed\r\n\ta\r\n\tb"},
		{"\n\tfirst", "\r\n\tfirst"},
		{" ends\r\n", " ends\r\n"},
		{" ends\n", " ends\r\n"},
	}
	for _, tt := range tests {
		d := New(nil)
		d.Header("X", tt.in)
		got := d.Txn.Headers[0].Value
		if got != tt.want {
			t.Errorf("%q: kept %q, want %q", tt.in, got, tt.want)
		}
		if tt.in == tt.want && unsafe.StringData(got) != unsafe.StringData(tt.in) {
			t.Errorf("%q: copied", tt.in)
		}
	}
}

// The message state New made is kept for the first message when nothing
// used it (no connect or HELO ACL ran), and made anew, the old one closed,
// whenever something may have.
func TestMailKeepsOnlyUnusedResults(t *testing.T) {
	ctx := context.Background()
	connectACL, err := config.Load("t.conf", []byte("acl_smtp_connect = c\nbegin acl\nc:\n  accept\n"))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := acl.Compile(connectACL, acl.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    *Env
		before func(d *Driver)
		kept   bool
	}{
		{"no ACL ran", &Env{}, func(*Driver) {}, true},
		{"a connect ACL ran", &Env{Program: prog}, func(*Driver) {}, false},
		{"a message ended", &Env{}, func(d *Driver) {
			d.Mail(ctx, "a@example.com", "Q0")
			d.Rcpt(ctx, "b@example.org")
			d.Header("From", " a@example.com")
			d.EndOfHeader()
			d.Body([]byte("hi\r\n"))
			d.EndOfMessage(ctx, "Q0")
		}, false},
		{"an abort", &Env{}, func(d *Driver) { d.Abort() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(tt.env)
			d.Connect(ctx, Client{IP: netip.MustParseAddr("192.0.2.1")})
			d.Helo(ctx, "client.example")
			tt.before(d)
			old := d.Txn.Results
			d.Mail(ctx, "alice@example.com", "Q1")
			if kept := d.Txn.Results == old; kept != tt.kept {
				t.Errorf("results kept %v, want %v", kept, tt.kept)
			}
			if d.Txn.Results.Closed() {
				t.Error("the new message's state is closed")
			}
			if !tt.kept && !old.Closed() {
				t.Error("the old message state was not closed")
			}
		})
	}
}
