package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestFormatEscapesControlCharacters: check-config echoes the faulty line;
// terminal escape sequences, other control characters, bidirectional
// controls and bytes that are not UTF-8 in it are printed as escapes, and
// the caret stays under the faulty column.
func TestFormatEscapesControlCharacters(t *testing.T) {
	tests := []struct {
		name, src string
		col       int    // of the error, in bytes of src
		shown     string // the line as printed
		caret     int    // spaces before the caret
	}{
		{"terminal escape", "\x1b[2J\x1b[31mauthserv_idd = x", 10, `\x1b[2J\x1b[31mauthserv_idd = x`, 15},
		{"bell and DEL", "a\x07b\x7f = x", 6, `a\x07b\x7f = x`, 11},
		{"tab", "\tfoo = x", 2, " foo = x", 1},
		{"bidi override", "x = \u202eevil", 5, `x = \u202eevil`, 4},
		{"after a bidi override", "x = \u202eevil", 8, `x = \u202eevil`, 10},
		{"C1 control", "x = \u009b31m", 5, `x = \u009b31m`, 4},
		{"not UTF-8", "x = \xff\xfe!", 7, `x = \xff\xfe!`, 12},
		{"UTF-8 text is kept, caret by character", "x = é y", 8, "x = é y", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Error{Pos: Pos{File: "f.conf", Line: 1, Col: tt.col}, Msg: "bad \x1b]0;title\x07", Source: tt.src}
			got := e.Format()
			if strings.ContainsAny(got, "\x1b\x07\x7f\u202e\u009b") || strings.Contains(got, "\xff") {
				t.Errorf("raw control characters reach the output: %q", got)
			}
			if !strings.HasPrefix(got, "f.conf:1:"+strconv.Itoa(tt.col)+": bad \\x1b]0;title\\x07\n") {
				t.Errorf("message not escaped: %q", got)
			}
			want := "    " + tt.shown + "\n    " + strings.Repeat(" ", tt.caret) + "^"
			if _, rest, _ := strings.Cut(got, "\n"); rest != want {
				t.Errorf("got:\n%s\nwant:\n%s", rest, want)
			}
		})
	}
}

// TestCheckConfigLineWithEscapes loads a file whose faulty line carries a
// terminal escape sequence: the error quotes it escaped.
func TestCheckConfigLineWithEscapes(t *testing.T) {
	_, err := Load("esc.conf", []byte("authserv_idd = \x1b[31mred\n"))
	out := AsList(err).Format()
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `authserv_idd = \x1b[31mred`) {
		t.Errorf("output %q", out)
	}
}
