package milter

import "bytes"

// maxESMTPArgs bounds the ESMTP parameters kept of one MAIL or RCPT
// packet; RFC 5321 §4.5.3.1.4 bounds the whole command line to 512
// bytes, an extension (RFC 3461 ORCPT) to 500 more.
const maxESMTPArgs = 16

// dsnKeywords are the parameters kept: those of RFC 3461 (RET and ENVID
// of MAIL, NOTIFY and ORCPT of RCPT). The others (SIZE, BODY, SMTPUTF8,
// AUTH…) are read past without a copy, so that ordinary mail costs no
// allocation here.
var dsnKeywords = [][]byte{[]byte("RET"), []byte("ENVID"), []byte("NOTIFY"), []byte("ORCPT")}

// esmtpArgs reads the RFC 3461 parameters of a MAIL or RCPT packet
// (SMFIC_MAIL, SMFIC_RCPT): the address, then each argument, every one
// NUL-terminated. Other and empty arguments are skipped; at most
// maxESMTPArgs are kept; nil when there are none.
func esmtpArgs(p []byte) []string {
	_, rest, ok := bytes.Cut(p, []byte{0})
	if !ok {
		return nil
	}
	var args []string
	for len(rest) > 0 && len(args) < maxESMTPArgs {
		var a []byte
		a, rest, _ = bytes.Cut(rest, []byte{0})
		if isDSNParam(a) {
			args = append(args, string(a))
		}
	}
	return args
}

// isDSNParam reports whether an ESMTP argument (KEYWORD=value) is one
// of dsnKeywords, in any case.
func isDSNParam(a []byte) bool {
	kw, _, _ := bytes.Cut(a, []byte("="))
	for _, k := range dsnKeywords {
		if bytes.EqualFold(kw, k) {
			return true
		}
	}
	return false
}
