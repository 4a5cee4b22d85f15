package arc

import (
	"errors"
	"strings"
)

// tag is one tag-spec of an RFC 6376 §3.2 tag list.
type tag struct {
	name  string
	value string // without the surrounding FWS; inner FWS kept as written
	// The value span in the parsed string, including the FWS around the
	// value: from just after "=" to just before the ";" (or the end). It
	// is what "b=" removal deletes (RFC 6376 §3.7, RFC 8617 §5.1.1).
	start, end int
}

// tagList is a parsed tag list, in the order the tags were written.
type tagList []tag

// Errors of the tag-list parser. They describe why a tag list is invalid;
// RFC 6376 §3.2 makes the whole list invalid in each case.
var (
	errTagEmpty    = errors.New("empty tag-spec")
	errTagNoEquals = errors.New("tag-spec without \"=\"")
	errTagName     = errors.New("invalid tag name")
	errTagValue    = errors.New("invalid character in tag value")
	errTagDup      = errors.New("duplicate tag")
)

// maxTags bounds the work spent on one tag list: real ones have a dozen.
const maxTags = 64

// parseTagList parses an RFC 6376 §3.2 tag list:
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
// as whitespace, so folded header values parse as written.
func parseTagList(s string) (tagList, error) {
	list := make(tagList, 0, 12)
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
			return nil, errTagEmpty // ";;" or a leading ";"
		}
		eq := strings.IndexByte(spec, '=')
		if eq < 0 {
			return nil, errTagNoEquals
		}
		name := trimFWS(spec[:eq])
		if !validTagName(name) {
			return nil, errTagName
		}
		vstart := pos + eq + 1
		value := trimFWS(s[vstart:end])
		if !validTagValue(value) {
			return nil, errTagValue
		}
		for _, t := range list {
			if t.name == name {
				return nil, errTagDup
			}
		}
		if len(list) == maxTags {
			return nil, errors.New("too many tags")
		}
		list = append(list, tag{name: name, value: value, start: vstart, end: end})
		if semi < 0 {
			break
		}
		pos = end + 1
	}
	return list, nil
}

// get returns the value of the named tag and whether it is present.
func (l tagList) get(name string) (string, bool) {
	for _, t := range l {
		if t.name == name {
			return t.value, true
		}
	}
	return "", false
}

// find returns the tag with the given name, or nil.
func (l tagList) find(name string) *tag {
	for i := range l {
		if l[i].name == name {
			return &l[i]
		}
	}
	return nil
}

func isFWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isFWSOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isFWS(s[i]) {
			return false
		}
	}
	return true
}

func trimFWS(s string) string {
	i, j := 0, len(s)
	for i < j && isFWS(s[i]) {
		i++
	}
	for j > i && isFWS(s[j-1]) {
		j--
	}
	return s[i:j]
}

// stripFWS removes every whitespace character, as base64 values (b=, bh=,
// p=) require before decoding (RFC 6376 §3.5, §3.6.1).
func stripFWS(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if isFWS(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)-n)
	for i := 0; i < len(s); i++ {
		if !isFWS(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func validTagName(s string) bool {
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
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isFWS(c):
		case c == ';' || c < 0x21 || c == 0x7f:
			return false
		}
	}
	return true
}
