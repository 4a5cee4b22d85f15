package acl

import (
	"strings"
	"testing"
)

// TestACLCycleWarnings: ACLs that call each other in a cycle ("acl ="
// with a fixed name) get a warning at the call that closes it; calls that
// only fan out do not.
func TestACLCycleWarnings(t *testing.T) {
	tests := []struct {
		name, acls string
		want       []string
	}{
		{"calls itself", "a:\n  accept acl = a\n",
			[]string{`test.conf:4:16: ACL "a" calls itself; a run that goes round it defers after 20 nested calls, unless a condition before "acl =" stops it`}},
		{"cycle of three", "a:\n  warn acl = b\n  accept\nb:\n  accept acl = c\nc:\n  deny condition = no\n  accept acl = a\n",
			[]string{`test.conf:10:16: ACLs call each other in a cycle: a → b → c → a; a run that goes round it defers after 20 nested calls, unless a condition before "acl =" stops it`}},
		{"fan-out without a cycle", "a:\n  warn acl = b\n  warn acl = b\n  accept acl = c\nb:\n  accept acl = c\nc:\n  accept\n", nil},
		{"expanded names are not followed", "a:\n  accept acl = ${if eq{1}{1}{a}{b}}\nb:\n  accept\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, "acl_smtp_connect = a\nbegin acl\n"+tt.acls, nil)
			var got []string
			for _, w := range p.Warnings {
				if strings.Contains(w.Msg, "cycle") || strings.Contains(w.Msg, "calls itself") {
					got = append(got, w.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
