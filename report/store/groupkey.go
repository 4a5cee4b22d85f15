package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/report"
)

// groupColumns are the columns of report_groups that make a group: what
// an aggregate report counts together (Group without Count and Last).
// The first 17 are OpenDMARC's fields, the last 9 (extension) the sidecar
// format's, NULL for a record in OpenDMARC's.
const (
	groupColumns  = "policy_domain, ip, action, policy, align_dkim, align_spf, arc_policy, header_from, envelope_from, spf, dkim, p, sp, pct, adkim, aspf, rua, " + extension
	extension     = "spf_domain, spf_scope, rcpt_domains, np, psd, testing, fo, ruf, override"
	nGroupColumns = 17 + 9
)

// The group key is an injective encoding of a group's column values:
// each value is followed by its type tag (a string's bytes by their
// length too), so that read from its end the key gives the values back
// (decodeKey). appendRecordKey writes it from a record without
// allocating (the import path, once per record); appendArgsKey from the
// column values (the migration of an older store); both give the same
// bytes for the same values (TestGroupKey).
const (
	tagNull   = 'n'
	tagByte   = 'b' // an integer in [0, 255], in one byte
	tagInt    = 'i' // another, in 8
	tagString = 's'
)

func keyInt(b []byte, v int64) []byte {
	if v >= 0 && v <= 255 {
		return append(b, byte(v), tagByte)
	}
	return append(binary.LittleEndian.AppendUint64(b, uint64(v)), tagInt)
}

// keyEnd ends the string value that started at offset start.
func keyEnd(b []byte, start int) []byte {
	return append(binary.LittleEndian.AppendUint32(b, uint32(len(b)-start)), tagString)
}

func keyString(b []byte, s string) []byte {
	start := len(b)
	return keyEnd(append(b, s...), start)
}

func keyJoin(b []byte, list []string) []byte {
	start := len(b)
	for i, s := range list {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	return keyEnd(b, start)
}

// decodeKey returns the column values of the group whose key is k.
func decodeKey(k []byte) ([]any, error) {
	out := make([]any, nGroupColumns)
	for i := nGroupColumns - 1; i >= 0; i-- {
		if len(k) == 0 {
			return nil, errBadKey
		}
		tag := k[len(k)-1]
		k = k[:len(k)-1]
		switch {
		case tag == tagNull:
			out[i] = nil
		case tag == tagByte && len(k) >= 1:
			out[i] = int64(k[len(k)-1])
			k = k[:len(k)-1]
		case tag == tagInt && len(k) >= 8:
			v := int64(binary.LittleEndian.Uint64(k[len(k)-8:]))
			if v >= 0 && v <= 255 {
				return nil, errBadKey // tagByte's
			}
			out[i] = v
			k = k[:len(k)-8]
		case tag == tagString && len(k) >= 4:
			n := int(binary.LittleEndian.Uint32(k[len(k)-4:]))
			k = k[:len(k)-4]
			if n > len(k) {
				return nil, errBadKey
			}
			out[i] = string(k[len(k)-n:])
			k = k[:len(k)-n]
		default:
			return nil, errBadKey
		}
	}
	if len(k) != 0 {
		return nil, errBadKey
	}
	return out, nil
}

var errBadKey = errors.New("malformed group key")

// appendRecordKey appends the key of r's group.
func appendRecordKey(b []byte, r *report.HistoryRecord) []byte {
	b = keyString(b, r.PolicyDomain)
	b = keyString(b, r.IPAddr)
	for _, v := range [...]int{r.Action, r.Policy, r.AlignDKIM, r.AlignSPF, r.ARCPolicy} {
		b = keyInt(b, int64(v))
	}
	b = keyString(b, r.From)
	b = keyString(b, r.MailFrom)
	b = keyInt(b, int64(r.SPF))
	start := len(b)
	b = keyEnd(appendDKIM(b, r.DKIM), start)
	for _, v := range [...]int{r.P, r.SP, r.Pct, r.ADKIM, r.ASPF} {
		b = keyInt(b, int64(v))
	}
	b = keyJoin(b, r.RUA)
	x := r.Ext
	if x == nil {
		for range 9 {
			b = append(b, tagNull)
		}
		return b
	}
	b = keyString(b, x.SPFDomain)
	b = keyString(b, x.SPFScope)
	b = keyJoin(b, x.RcptDomains)
	for _, v := range [...]int{x.NP, x.PSD, x.Testing} {
		b = keyInt(b, int64(v))
	}
	b = keyString(b, x.FO)
	b = keyJoin(b, x.RUF)
	start = len(b)
	for i, o := range x.Override {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, o...)
	}
	return keyEnd(b, start)
}

// appendArgsKey appends the key of the group with the column values
// args (string, int64 or nil each, as decodeKey gives them).
func appendArgsKey(b []byte, args []any) []byte {
	for _, a := range args {
		switch v := a.(type) {
		case nil:
			b = append(b, tagNull)
		case int64:
			b = keyInt(b, v)
		case string:
			b = keyString(b, v)
		default:
			panic(fmt.Sprintf("store: group value of type %T", a))
		}
	}
	return b
}

// keyHash is the gkey column: the group key's SHA-256 (as a string of
// its 32 bytes). The key itself may be long (many rua or recipient
// domains), more than a PostgreSQL index entry takes.
func keyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return string(h[:])
}

// appendDKIM appends the dkim column: one "domain selector result-code"
// per signature, newline-separated, in the record's order.
func appendDKIM(b []byte, sigs []report.HistoryDKIM) []byte {
	for i, d := range sigs {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, d.Domain...)
		b = append(b, ' ')
		b = append(b, d.Selector...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(d.Result), 10)
	}
	return b
}

// FormatDKIM is the dkim column: one "domain selector result-code" per
// signature, newline-separated, in the record's order.
func FormatDKIM(sigs []report.HistoryDKIM) string {
	if len(sigs) == 0 {
		return ""
	}
	return string(appendDKIM(nil, sigs))
}

// ParseDKIM reads the dkim column back.
func ParseDKIM(col string) []report.HistoryDKIM {
	if col == "" {
		return nil
	}
	var out []report.HistoryDKIM
	for _, line := range strings.Split(col, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.Atoi(f[2])
		out = append(out, report.HistoryDKIM{Domain: f[0], Selector: f[1], Result: report.ARES(n)})
	}
	return out
}
