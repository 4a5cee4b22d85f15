package milter

import (
	"errors"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

func TestVerdictReply(t *testing.T) {
	tests := []struct {
		name  string
		res   acl.Result
		code  byte
		text  string // without the final NUL
		close bool
	}{
		{"accept continues", acl.Result{Verb: acl.Accept}, 'c', "", false},
		{"discard", acl.Result{Verb: acl.Discard}, 'd', "", false},
		{"deny default", acl.Result{Verb: acl.Deny}, 'y', "550 5.7.1 Rejected by policy", false},
		{"deny text only", acl.Result{Verb: acl.Deny, Message: "no thanks"}, 'y', "550 5.7.1 no thanks", false},
		{"deny own codes", acl.Result{Verb: acl.Deny, Message: "554 5.7.0 spam"}, 'y', "554 5.7.0 spam", false},
		{"deny code without enhanced", acl.Result{Verb: acl.Deny, Message: "553 bad address"}, 'y', "553 5.7.1 bad address", false},
		{"deny cannot answer 4xx", acl.Result{Verb: acl.Deny, Message: "451 4.7.1 later"}, 'y', "550 5.7.1 later", false},
		{"deny cannot answer 2xx", acl.Result{Verb: acl.Deny, Message: "250 ok"}, 'y', "550 5.7.1 250 ok", false},
		{"enhanced code of the other class", acl.Result{Verb: acl.Deny, Message: "550 4.7.1 x"}, 'y', "550 5.7.1 x", false},
		{"defer default", acl.Result{Verb: acl.Defer}, 'y', "451 4.7.1 Try again later", false},
		{"defer own code", acl.Result{Verb: acl.Defer, Message: "452 4.5.3 too many"}, 'y', "452 4.5.3 too many", false},
		{"defer error", acl.Result{Verb: acl.Defer, Err: errors.New("dns")}, 'y', "451 4.3.0 Temporary local problem, try again later", false},
		{"defer error with message", acl.Result{Verb: acl.Defer, Message: "later", Err: errors.New("dns")}, 'y', "451 4.3.0 later", false},
		{"drop", acl.Result{Verb: acl.Drop}, 'y', "421 4.7.0 Connection closed by policy", true},
		{"drop keeps 421", acl.Result{Verb: acl.Drop, Message: "450 4.7.2 bye"}, 'y', "421 4.7.2 bye", true},
		{"unknown verb defers", acl.Result{Verb: "warn"}, 'y', "451 4.7.1 Try again later", false},
		{"percent doubled", acl.Result{Verb: acl.Deny, Message: "100% spam"}, 'y', "550 5.7.1 100%% spam", false},
		{"control characters", acl.Result{Verb: acl.Deny, Message: "a\x00b\rc\td"}, 'y', "550 5.7.1 a b c d", false},
		{"multi-line", acl.Result{Verb: acl.Deny, Message: "550 5.7.1 first\nsecond\n\n"}, 'y', "550-5.7.1 first\r\n550 5.7.1 second", false},
		{"crlf lines", acl.Result{Verb: acl.Defer, Message: "one\r\ntwo"}, 'y', "451-4.7.1 one\r\n451 4.7.1 two", false},
		{"empty text after code", acl.Result{Verb: acl.Deny, Message: "551 5.1.6"}, 'y', "551 5.1.6 Rejected by policy", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, closeAfter := verdictReply(tc.res)
			msg := r.Response()
			text := string(msg.Data)
			if msg.Code == 'y' {
				if text == "" || text[len(text)-1] != 0 {
					t.Fatalf("reply %q not NUL-terminated", text)
				}
				text = text[:len(text)-1]
			}
			if msg.Code != tc.code || text != tc.text || closeAfter != tc.close {
				t.Errorf("got %q %q close=%v, want %q %q close=%v", msg.Code, text, closeAfter, tc.code, tc.text, tc.close)
			}
			if !r.Continue() {
				t.Error("Continue() is false: go-milter would replace the handler")
			}
		})
	}
}

func TestReplyLimits(t *testing.T) {
	long := make([]byte, 2000)
	for i := range long {
		long[i] = 'x'
	}
	r := smtpReply(string(long), DefaultDeny, false).Response()
	if n := len(r.Data); n > 512 {
		t.Errorf("reply line of %d bytes", n)
	}
	many := ""
	for range 100 {
		many += "line\n"
	}
	r = smtpReply(many, DefaultDeny, false).Response()
	lines := 1
	for _, c := range r.Data {
		if c == '\n' {
			lines++
		}
	}
	if lines != maxReplyLines {
		t.Errorf("%d lines, want %d", lines, maxReplyLines)
	}
	if r.Code != byte(gomilter.ActReplyCode) {
		t.Errorf("code %q", r.Code)
	}
}
