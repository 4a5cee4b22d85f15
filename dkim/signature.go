package dkim

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// headerFieldName is the name of the signature header field (RFC 6376 §3.5).
const headerFieldName = "DKIM-Signature"

// field is one header field: its name and its raw value after the colon,
// continuation lines included.
type field struct {
	name, value string
}

// splitFields splits a header block (without the empty line that ends it)
// into fields, with LF or CRLF line ends. A line that starts with a space
// or tab continues the previous field; as in go-msgauth, a first line that
// starts with white space, or a line without a colon, is a field of its
// own (so that both count DKIM-Signature fields alike).
func splitFields(hdr string) []field {
	var fields []field
	var lines []string
	for len(hdr) > 0 {
		i := strings.IndexByte(hdr, '\n')
		var line string
		if i < 0 {
			line, hdr = hdr, ""
		} else {
			line, hdr = hdr[:i], hdr[i+1:]
		}
		line = strings.TrimSuffix(line, "\r")
		if len(lines) > 0 && line != "" && (line[0] == ' ' || line[0] == '\t') {
			lines[len(lines)-1] += "\r\n" + line
			continue
		}
		lines = append(lines, line)
	}
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		fields = append(fields, field{name: strings.TrimSpace(name), value: value})
	}
	return fields
}

// signatureValues returns the raw values of the DKIM-Signature fields of
// a header block, in order, counting fields exactly as splitFields does
// but without building the others.
func signatureValues(hdr []byte) []string {
	var values []string
	cur := -1 // index in values of the field being continued, or -1
	first := true
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		var line []byte
		if i < 0 {
			line, hdr = hdr, nil
		} else {
			line, hdr = hdr[:i], hdr[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if !first && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if cur >= 0 {
				values[cur] += "\r\n" + string(line)
			}
			continue
		}
		first = false
		cur = -1
		name, value, _ := bytes.Cut(line, []byte(":"))
		if len(name) >= len(headerFieldName) && bytes.EqualFold(bytes.TrimSpace(name), []byte(headerFieldName)) {
			values = append(values, string(value))
			cur = len(values) - 1
		}
	}
	return values
}

// signature is what this package reads from a DKIM-Signature field
// itself: go-msgauth's results lack the selector, algorithm and b=.
type signature struct {
	domain     string // d=, lower-cased
	identifier string // i=, or "@" + d=
	selector   string // s=
	algorithm  string // a=
	bprefix    string // first 8 of b=
}

// errTagList is a malformed tag=value list (RFC 6376 §3.2).
var errTagList = errors.New("malformed tag list")

// parseTagList parses an RFC 6376 §3.2 tag=value list. Tag names are
// case-sensitive; a duplicate tag is an error. Values keep their inner
// white space; the caller strips it where the syntax allows FWS.
func parseTagList(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, spec := range strings.Split(s, ";") {
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			if strings.TrimSpace(spec) == "" {
				continue
			}
			return tags, fmt.Errorf("%w: %q has no '='", errTagList, strings.TrimSpace(spec))
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return tags, fmt.Errorf("%w: empty tag name", errTagList)
		}
		if _, dup := tags[name]; dup {
			return tags, fmt.Errorf("%w: duplicate tag %s=", errTagList, name)
		}
		tags[name] = strings.TrimSpace(value)
	}
	return tags, nil
}

// stripFWS removes all white space (folding included) from a tag value.
func stripFWS(s string) string {
	if !hasFWS(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// hasFWS reports whether s has white space.
func hasFWS(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}

// parseSignature reads the tags a Result reports from a DKIM-Signature
// value; from a malformed tag list, those read before the fault.
func parseSignature(value string) signature {
	tags, _ := parseTagList(value)
	return readSignature(func(name string) (string, bool) {
		v, ok := tags[name]
		return v, ok
	})
}

// signature is parseSignature for the value of a check whose strict parse
// (RFC 6376 §3.2) succeeded: a valid list is read alike by both parsers
// (same tags, values trimmed of the same white space), so the tag map
// need not be built again, and what the check read already (d=, i=) is
// not read twice.
func (c *sigCheck) signature() signature {
	if c.identifier == "" { // the check stopped before reading d= and i=
		return readSignature(c.tags.Get)
	}
	var sig signature
	sig.domain = strings.ToLower(c.domain) // c.domain is d= lowered in ASCII
	sv, _ := c.tags.Get("s")
	sig.selector = stripFWS(sv)
	a, _ := c.tags.Get("a")
	sig.algorithm = strings.ToLower(stripFWS(a))
	switch _, hasI := c.tags.Get("i"); {
	case hasI:
		sig.identifier = c.identifier // i= without its FWS
	case sig.domain == "":
	case sig.domain == c.domain:
		sig.identifier = c.identifier // "@" + d=
	default:
		sig.identifier = "@" + sig.domain
	}
	b, _ := c.tags.Get("b")
	sig.bprefix = firstNonFWS(b, 8)
	return sig
}

// readSignature reads the tags a Result reports through get.
func readSignature(get func(name string) (string, bool)) signature {
	var sig signature
	d, _ := get("d")
	sig.domain = strings.ToLower(stripFWS(d))
	sv, _ := get("s")
	sig.selector = stripFWS(sv)
	a, _ := get("a")
	sig.algorithm = strings.ToLower(stripFWS(a))
	i, hasI := get("i")
	sig.identifier = stripFWS(i)
	if !hasI && sig.domain != "" {
		sig.identifier = "@" + sig.domain
	}
	b, _ := get("b")
	sig.bprefix = firstNonFWS(b, 8)
	return sig
}

// firstNonFWS returns the first n characters of s that are not white
// space.
func firstNonFWS(s string, n int) string {
	if len(s) >= n && !hasFWS(s[:n]) {
		return s[:n]
	}
	out := make([]byte, 0, n)
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}

// parseUnixTime parses a DKIM timestamp: 1 to 12 digits (RFC 6376 §3.5).
func parseUnixTime(v string) (time.Time, error) {
	v = stripFWS(v)
	if v == "" || len(v) > 12 {
		return time.Time{}, fmt.Errorf("%q is not 1 to 12 digits", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return time.Time{}, fmt.Errorf("%q is not 1 to 12 digits", v)
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0), nil
}

// identifierDomain returns the domain part of an i= value.
func identifierDomain(i string) string {
	return strings.ToLower(i[strings.LastIndexByte(i, '@')+1:])
}
