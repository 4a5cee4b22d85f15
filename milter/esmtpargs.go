package milter

import "bytes"

// maxESMTPArgs bounds the ESMTP parameters kept of one MAIL or RCPT
// packet; RFC 5321 §4.5.3.1.4 bounds the whole command line to 512
// bytes, an extension (RFC 3461 ORCPT) to 500 more.
const maxESMTPArgs = 16

// esmtpArgs reads the ESMTP parameters of a MAIL or RCPT packet
// (SMFIC_MAIL, SMFIC_RCPT): the address, then each argument, every one
// NUL-terminated. Empty arguments are skipped; at most maxESMTPArgs are
// kept.
func esmtpArgs(p []byte) []string {
	_, rest, ok := bytes.Cut(p, []byte{0})
	if !ok {
		return nil
	}
	var args []string
	for len(rest) > 0 && len(args) < maxESMTPArgs {
		var a []byte
		a, rest, _ = bytes.Cut(rest, []byte{0})
		if len(a) > 0 {
			args = append(args, string(a))
		}
	}
	return args
}
