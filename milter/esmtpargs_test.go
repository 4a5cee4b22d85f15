package milter

import (
	"fmt"
	"strings"
	"testing"
)

// esmtpPacket is the body of an SMFIC_MAIL or SMFIC_RCPT packet.
func esmtpPacket(addr string, args ...string) []byte {
	var b strings.Builder
	b.WriteString(addr + "\x00")
	for _, a := range args {
		b.WriteString(a + "\x00")
	}
	return []byte(b.String())
}

func TestESMTPArgs(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"ordinary mail", []string{"SIZE=1234", "BODY=8BITMIME", "SMTPUTF8", "AUTH=<>"}, nil},
		{"none", nil, nil},
		{"mail with RFC 3461", []string{"SIZE=99", "RET=HDRS", "envid=ENV+2B7", "BODY=7BIT"}, []string{"RET=HDRS", "envid=ENV+2B7"}},
		{"rcpt with RFC 3461", []string{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"}, []string{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"}},
		{"keyword prefix only", []string{"RETURN=1", "NOTIFYX=2", "ORCPT"}, []string{"ORCPT"}},
		{"empty arguments", []string{"", "RET=FULL", ""}, []string{"RET=FULL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := esmtpArgs(esmtpPacket("<a@example.com>", tt.args...))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || (tt.want == nil) != (got == nil) {
				t.Errorf("esmtpArgs(%q) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("NOTIFY=N%d", i)
	}
	if got := esmtpArgs(esmtpPacket("<a@example.com>", many...)); len(got) != maxESMTPArgs {
		t.Errorf("%d arguments kept of 40, want %d", len(got), maxESMTPArgs)
	}
}

// Ordinary mail (SIZE, BODY and the like) costs no allocation.
func TestESMTPArgsOrdinaryAllocs(t *testing.T) {
	p := esmtpPacket("<alice@example.com>", "SIZE=10240", "BODY=8BITMIME", "SMTPUTF8")
	if n := testing.AllocsPerRun(100, func() { esmtpArgs(p) }); n != 0 {
		t.Errorf("%v allocations per ordinary MAIL packet, want 0", n)
	}
}
