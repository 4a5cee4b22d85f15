package config

import "strings"

// ListItem is one item of an Exim-style list, with white space trimmed.
type ListItem struct {
	Text string
	Off  int // byte offset of Text in the list's Value
	Pos  Pos
}

// SplitList splits an Exim list. Items are separated by ":" (write "::"
// for a literal colon); a list starting with "<" followed by a punctuation
// character uses that character instead ("<; 2001:db8::1 ; ::1"). White
// space around items is dropped. Empty items are kept, because they mean
// something in host and address lists ("hosts = :" matches the empty
// host); an empty value gives no items.
func SplitList(v Value) []ListItem {
	s := v.Text
	sep := byte(':')
	i := 0
	if len(s) >= 2 && s[0] == '<' && isListSep(s[1]) {
		sep, i = s[1], 2
	}
	if strings.TrimSpace(s[i:]) == "" {
		return nil
	}
	var out []ListItem
	var b strings.Builder
	start := -1
	flush := func(end int) {
		text := strings.TrimRight(b.String(), " \t")
		off := start
		if off < 0 {
			off = end
		}
		out = append(out, ListItem{Text: text, Off: off, Pos: v.PosAt(off)})
		b.Reset()
		start = -1
	}
	for i < len(s) {
		c := s[i]
		if c == sep {
			if i+1 < len(s) && s[i+1] == sep { // doubled: a literal separator
				if start < 0 {
					start = i
				}
				b.WriteByte(sep)
				i += 2
				continue
			}
			flush(i)
			i++
			continue
		}
		if start < 0 && isSpace(c) {
			i++
			continue
		}
		if start < 0 {
			start = i
		}
		b.WriteByte(c)
		i++
	}
	flush(len(s))
	return out
}

func isListSep(c byte) bool {
	return strings.IndexByte(";,|!@#%^&*+=/?~-", c) >= 0
}
