package dsninfo

import (
	"errors"
	"strings"
)

// Envelope is what the RFC 3461 parameters of one transaction ask for:
// RET and ENVID on MAIL FROM.
type Envelope struct {
	Ret   string // "FULL" or "HDRS" (upper-cased); "" when not given
	EnvID string // ENVID, xtext-decoded
}

// RcptRequest is what the RFC 3461 parameters of one RCPT TO ask for.
type RcptRequest struct {
	Notify []string // NEVER, or some of SUCCESS, FAILURE, DELAY (upper-cased)
	ORCPT  Typed    // the original recipient, xtext-decoded: "rfc822; bob@example.org"
}

// NotifyString returns the NOTIFY keywords as written: "SUCCESS,FAILURE".
func (r RcptRequest) NotifyString() string { return strings.Join(r.Notify, ",") }

// maxParam bounds a parameter's value (RFC 3461 §4.2 and §4.4 allow 100
// characters of ENVID and 500 of ORCPT, xtext-encoded).
const maxParam = 1000

// ParseEnvelope reads the ESMTP parameters of MAIL FROM ("RET=HDRS",
// "ENVID=QQ314159", "SIZE=100"...); others are ignored, and so is a value
// that is not valid xtext or longer than 1000 bytes.
func ParseEnvelope(args []string) Envelope {
	var e Envelope
	eachParam(args, func(k, v string) {
		switch k {
		case "RET":
			if u := strings.ToUpper(v); u == "FULL" || u == "HDRS" {
				e.Ret = u
			}
		case "ENVID":
			if d, err := DecodeXtext(v); err == nil {
				e.EnvID = d
			}
		}
	})
	return e
}

// eachParam calls f with each parameter's upper-cased keyword and value.
func eachParam(args []string, f func(k, v string)) {
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		f(strings.ToUpper(k), v)
	}
}

// ParseRcptRequest reads the ESMTP parameters of RCPT TO ("NOTIFY=SUCCESS,FAILURE",
// "ORCPT=rfc822;bob+40example.org").
func ParseRcptRequest(args []string) RcptRequest {
	var r RcptRequest
	eachParam(args, func(k, v string) {
		switch k {
		case "NOTIFY":
			if len(v) > maxParam {
				return
			}
			r.Notify = nil
			for _, w := range strings.Split(v, ",") {
				switch u := strings.ToUpper(strings.TrimSpace(w)); u {
				case "NEVER", "SUCCESS", "FAILURE", "DELAY":
					r.Notify = append(r.Notify, u)
				}
			}
		case "ORCPT":
			if d, err := DecodeXtext(v); err == nil {
				r.ORCPT = typed(d)
			}
		}
	})
	return r
}

// ErrXtext is the error of a value that is not RFC 3461 xtext.
var ErrXtext = errors.New("not xtext (RFC 3461 §4)")

// DecodeXtext decodes RFC 3461 xtext: "+XX" is the byte of hex XX;
// other characters are printable ASCII but "+" and "=". Values longer
// than 1000 bytes are refused.
func DecodeXtext(s string) (string, error) {
	if len(s) > maxParam {
		return "", ErrXtext
	}
	if strings.IndexByte(s, '+') < 0 {
		for i := 0; i < len(s); i++ {
			if s[i] < '!' || s[i] > '~' || s[i] == '=' {
				return "", ErrXtext
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", ErrXtext
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", ErrXtext
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", ErrXtext
		default:
			b.WriteByte(c)
		}
	}
	return clean(b.String()), nil
}
