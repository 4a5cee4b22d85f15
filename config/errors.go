package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Pos is a position in a configuration file. Line and Col count from 1; Col
// counts bytes.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether the position points into a file.
func (p Pos) IsValid() bool { return p.Line > 0 }

// Error is one problem in a configuration file.
type Error struct {
	Pos     Pos
	Msg     string
	Source  string // the text of the offending line, if known
	Warning bool   // a warning does not make the file invalid
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Format renders the error as `file:line:col: message`, followed by the
// offending line and a caret under the column.
func (e *Error) Format() string {
	var b strings.Builder
	head, _ := printable(e.Pos.String(), 0)
	b.WriteString(head)
	b.WriteString(": ")
	if e.Warning {
		b.WriteString("warning: ")
	}
	msg, _ := printable(e.Msg, 0)
	b.WriteString(msg)
	if e.Source != "" && e.Pos.Col > 0 {
		src, caret := printable(e.Source, e.Pos.Col-1)
		b.WriteString("\n    ")
		b.WriteString(src)
		b.WriteString("\n    ")
		b.WriteString(strings.Repeat(" ", caret))
		b.WriteString("^")
	}
	return b.String()
}

// printable returns s as it may be printed on a terminal: a tab becomes a
// space, and control characters (C0, DEL, C1), the bidirectional controls
// that reorder what is displayed, and bytes that are not UTF-8 are
// written as Go escapes (\x1b, \u202e), so that nothing in a file reaches
// the terminal as a command. It also returns the display column (in
// characters) of byte offset off of s, for the caret.
func printable(s string, off int) (string, int) {
	var b strings.Builder
	col := -1
	n := 0 // characters written
	for i, w := 0, 0; i < len(s); i += w {
		if i >= off && col < 0 {
			col = n
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		var out string
		switch {
		case r == '\t':
			out = " "
		case r == utf8.RuneError && size == 1:
			out = fmt.Sprintf(`\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			out = fmt.Sprintf(`\x%02x`, r)
		case 0x80 <= r && r < 0xa0, isBidiControl(r):
			out = fmt.Sprintf(`\u%04x`, r)
		default:
			out = s[i : i+size]
			b.WriteString(out)
			n++
			continue
		}
		b.WriteString(out)
		n += len(out)
	}
	if col < 0 {
		col = n
	}
	return b.String(), col
}

// isBidiControl reports the Unicode characters that change the order in
// which text is displayed (CVE-2021-42574, "Trojan Source").
func isBidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069
}

// ErrorList is every problem found in one load, in file order. It is an
// error when it holds at least one Error that is not a warning.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var msgs []string
	for _, e := range l.Errors() {
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "\n")
}

// Errors returns the entries that are not warnings.
func (l ErrorList) Errors() ErrorList {
	var out ErrorList
	for _, e := range l {
		if !e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// Warnings returns the entries that are warnings.
func (l ErrorList) Warnings() ErrorList {
	var out ErrorList
	for _, e := range l {
		if e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// Format renders every entry with its source line and caret.
func (l ErrorList) Format() string {
	var b strings.Builder
	for _, e := range l {
		b.WriteString(e.Format())
		b.WriteString("\n")
	}
	return b.String()
}

// Sort orders the list by file, line and column.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Err returns the list as an error when it has errors (not only
// warnings), and nil otherwise.
func (l ErrorList) Err() error {
	if len(l.Errors()) == 0 {
		return nil
	}
	return l
}

// AsList extracts the ErrorList from err, wrapping any other error.
func AsList(err error) ErrorList {
	if err == nil {
		return nil
	}
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e *Error
	if errors.As(err, &e) {
		return ErrorList{e}
	}
	return ErrorList{{Msg: err.Error()}}
}

// Reporter collects errors for one file and fills in the source lines.
type Reporter struct {
	lines map[string][]string
	List  ErrorList
}

// AddSource registers a file's text so that errors can quote its lines.
func (r *Reporter) AddSource(file string, src []byte) {
	if r.lines == nil {
		r.lines = map[string][]string{}
	}
	r.lines[file] = strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
}

// Errorf records an error at pos.
func (r *Reporter) Errorf(pos Pos, format string, args ...any) {
	r.add(pos, false, fmt.Sprintf(format, args...))
}

// Warnf records a warning at pos.
func (r *Reporter) Warnf(pos Pos, format string, args ...any) {
	r.add(pos, true, fmt.Sprintf(format, args...))
}

func (r *Reporter) add(pos Pos, warn bool, msg string) {
	e := &Error{Pos: pos, Msg: msg, Warning: warn}
	if lines := r.lines[pos.File]; pos.Line >= 1 && pos.Line <= len(lines) {
		e.Source = lines[pos.Line-1]
	}
	r.List = append(r.List, e)
}

// Source returns line n (from 1) of file, or "".
func (r *Reporter) Source(file string, n int) string {
	if lines := r.lines[file]; n >= 1 && n <= len(lines) {
		return lines[n-1]
	}
	return ""
}

// ErrorAt returns an error at pos with its source line (for the caret),
// for a feature that reports its option's problems itself (a
// Configurer's or a Compiler's ErrorList).
func (c *Config) ErrorAt(pos Pos, format string, args ...any) *Error {
	e := &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	if c != nil && c.Reporter != nil && pos.IsValid() {
		e.Source = c.Reporter.Source(pos.File, pos.Line)
	}
	return e
}
