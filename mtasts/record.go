package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// RecordPrefix is what an MTA-STS TXT record begins with (RFC 8461 §3.1).
const RecordPrefix = "v=STSv1"

// Record is the TXT record at _mta-sts.DOMAIN.
type Record struct {
	// ID identifies the policy in force: 1 to 32 letters and digits.
	ID string
}

// Errors of the record parser.
var (
	ErrNoRecord = errors.New("no MTA-STS TXT record")
	ErrRecord   = errors.New("invalid MTA-STS TXT record")
)

// RecordName returns the name of a domain's TXT record: _mta-sts.DOMAIN.
func RecordName(domain string) string { return "_mta-sts." + domain }

// SelectRecord picks the domain's record among the TXT records found
// (each one's strings already joined): records that do not begin with
// "v=STSv1" are discarded, and anything but exactly one valid record left
// means no policy (RFC 8461 §3.1). The error wraps ErrNoRecord or
// ErrRecord.
func SelectRecord(txts []string) (Record, error) {
	var cands []string
	for _, t := range txts {
		if strings.HasPrefix(t, RecordPrefix) {
			cands = append(cands, t)
		}
	}
	switch len(cands) {
	case 0:
		return Record{}, ErrNoRecord
	case 1:
		return ParseRecord(cands[0])
	}
	return Record{}, fmt.Errorf("%w: %d records begin with %s", ErrRecord, len(cands), RecordPrefix)
}

// ParseRecord parses one TXT record (RFC 8461 §3.1):
//
//	sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
//	sts-version     = %s"v=STSv1"
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-sep         = *WSP %x3B *WSP
//
// Other fields (extensions) are allowed and ignored; the first id counts.
func ParseRecord(txt string) (Record, error) {
	bad := func(why string) (Record, error) {
		return Record{}, fmt.Errorf("%w: %s", ErrRecord, why)
	}
	fields := strings.Split(txt, ";")
	if strings.TrimRight(fields[0], " \t") != RecordPrefix || fields[0] != strings.TrimLeft(fields[0], " \t") {
		return bad("it must begin with " + RecordPrefix + ";")
	}
	var r Record
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 {
				break // a trailing separator
			}
			return bad("empty field")
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || !isFieldName(name) || !isExtValue(value) {
			return bad(fmt.Sprintf("malformed field %q", f))
		}
		if name == "id" && r.ID == "" {
			if len(value) < 1 || len(value) > 32 || !isAlnum(value) {
				return bad(fmt.Sprintf("id %q is not 1 to 32 letters and digits", value))
			}
			r.ID = value
		}
	}
	if r.ID == "" {
		return bad("no id field")
	}
	return r, nil
}

// isFieldName: sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func isFieldName(s string) bool {
	if s == "" || len(s) > 32 || !isAlnum(s[:1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnumByte(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isExtValue: sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E), printable
// ASCII without "=", ";" and space.
func isExtValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

func isAlnumByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
