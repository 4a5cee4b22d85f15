package dkimcore

import (
	"errors"
	"math/bits"
	"strings"
)

// Tag is one tag-spec of an RFC 6376 §3.2 tag list.
type Tag struct {
	Name  string
	Value string // without the surrounding FWS; inner FWS kept as written
	// Start and End delimit the value span in the parsed string, the FWS
	// around the value included: from just after "=" to just before the
	// ";" (or the end). It is what b= removal deletes (RFC 6376 §3.7,
	// RFC 8617 §5.1.1).
	Start, End int
}

// TagList is a parsed tag list, in the order the tags were written.
type TagList []Tag

// Errors of the tag-list parser. Each makes the whole list invalid (RFC
// 6376 §3.2).
var (
	ErrTagEmpty    = errors.New("empty tag-spec")
	ErrTagNoEquals = errors.New("tag-spec without \"=\"")
	ErrTagName     = errors.New("invalid tag name")
	ErrTagValue    = errors.New("invalid character in tag value")
	ErrTagDup      = errors.New("duplicate tag")
	ErrTagCount    = errors.New("too many tags")
)

// MaxTags bounds the work spent on one tag list: real ones have a dozen.
const MaxTags = 64

// ParseTagList parses an RFC 6376 §3.2 tag list:
//
//	tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//	tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//	tag-name  =  ALPHA *ALNUMPUNC
//	tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
//	tval      =  1*VALCHAR            ; VALCHAR = %x21-3A / %x3C-7E
//
// Tag names are case-sensitive. A duplicate name, an empty tag-spec (";;"),
// a tag-spec without "=", a bad name or a control character in a value make
// the whole list invalid. An empty string is an empty list. CR and LF count
// as whitespace, so folded header values parse as written. At most MaxTags
// tags are read, so the work is linear in len(s).
func ParseTagList(s string) (TagList, error) { return ParseTagListInto(make(TagList, 0, 12), s) }

// ParseTagListInto is ParseTagList appending the tags to list[:0], whose
// memory it reuses.
func ParseTagListInto(list TagList, s string) (TagList, error) {
	list = list[:0]
	pos := 0
	for {
		semi := strings.IndexByte(s[pos:], ';')
		end := len(s)
		if semi >= 0 {
			end = pos + semi
		}
		spec := s[pos:end]
		if isFWSOnly(spec) {
			if semi < 0 {
				break // the end: an empty list, or FWS after a final ";"
			}
			return nil, ErrTagEmpty // ";;" or a leading ";"
		}
		eq := strings.IndexByte(spec, '=')
		if eq < 0 {
			return nil, ErrTagNoEquals
		}
		name := TrimFWS(spec[:eq])
		if !ValidTagName(name) {
			return nil, ErrTagName
		}
		vstart := pos + eq + 1
		value := TrimFWS(s[vstart:end])
		if !validTagValue(value) {
			return nil, ErrTagValue
		}
		for _, t := range list {
			if t.Name == name {
				return nil, ErrTagDup
			}
		}
		if len(list) == MaxTags {
			return nil, ErrTagCount
		}
		list = append(list, Tag{Name: name, Value: value, Start: vstart, End: end})
		if semi < 0 {
			break
		}
		pos = end + 1
	}
	return list, nil
}

// Get returns the value of the named tag and whether it is present.
func (l TagList) Get(name string) (string, bool) {
	for _, t := range l {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// Find returns the tag with the given name, or nil.
func (l TagList) Find(name string) *Tag {
	for i := range l {
		if l[i].Name == name {
			return &l[i]
		}
	}
	return nil
}

// IsFWS reports whether c is white space that folding may produce.
func IsFWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isFWSOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if !IsFWS(s[i]) {
			return false
		}
	}
	return true
}

// TrimFWS removes the white space at both ends of s.
func TrimFWS(s string) string {
	i, j := 0, len(s)
	for i < j && IsFWS(s[i]) {
		i++
	}
	for j > i && IsFWS(s[j-1]) {
		j--
	}
	return s[i:j]
}

// StripFWS removes every whitespace character, as base64 values (b=, bh=,
// p=) require before decoding (RFC 6376 §3.5, §3.6.1).
func StripFWS(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if IsFWS(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)-n)
	for i := 0; i < len(s); i++ {
		if !IsFWS(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// ValidTagName checks tag-name = ALPHA *ALNUMPUNC.
func ValidTagName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// validTagValue accepts VALCHARs and whitespace between them. Bytes of
// 0x80 and above are let through (UTF-8 in n= notes of key records occurs
// in the wild and harms nothing); other control characters are not.
func validTagValue(s string) bool {
	i := 0
	// Eight bytes at a time: only the bytes of 0x20 or less, DEL and ";"
	// are looked at one by one.
	for ; i+8 <= len(s); i += 8 {
		w := load64(s[i:])
		// Of these, only FWS is allowed.
		for odd := ctlBytes(w) | eqBytes(w, 0x7f) | eqBytes(w, ';'); odd != 0; odd &= odd - 1 {
			if !IsFWS(s[i+bits.TrailingZeros64(odd)>>3]) {
				return false
			}
		}
	}
	for ; i < len(s); i++ {
		if !valueByte(s[i]) {
			return false
		}
	}
	return true
}

func valueByte(c byte) bool { return IsFWS(c) || c > 0x20 && c != ';' && c != 0x7f }

// SplitColonList splits a colon-separated value (h=, and the h=, s= and
// t= of key records) and removes the white space around each element
// (RFC 6376 §3.5 allows FWS around the colons, not inside a name).
// Empty elements are kept: they match nothing.
func SplitColonList(v string) []string {
	return SplitColonListInto(make([]string, 0, strings.Count(v, ":")+1), v)
}

// SplitColonListInto is SplitColonList appending the elements to
// names[:0], whose memory it reuses.
func SplitColonListInto(names []string, v string) []string {
	names = names[:0]
	start := 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == ':' {
			names = append(names, TrimFWS(v[start:i]))
			start = i + 1
		}
	}
	return names
}

// InColonList reports whether a colon-separated list contains want.
func InColonList(list, want string) bool {
	for _, e := range strings.Split(list, ":") {
		if TrimFWS(e) == want {
			return true
		}
	}
	return false
}
