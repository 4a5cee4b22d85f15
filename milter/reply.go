package milter

import (
	"strconv"
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// reply is a response to the MTA. Continue always reports true: go-milter
// replaces the handler object after any other answer (accept, reject,
// tempfail, discard), which would lose the connection's state; our state
// lives in the session, and the handler is never replaced.
type reply struct{ msg gomilter.Message }

func (r *reply) Response() *gomilter.Message { return &r.msg }
func (r *reply) Continue() bool              { return true }

// The plain replies (shared, never modified).
var (
	replyContinue = &reply{gomilter.Message{Code: byte(gomilter.ActContinue)}}
	replyDiscard  = &reply{gomilter.Message{Code: byte(gomilter.ActDiscard)}}
	replyTempfail = &reply{gomilter.Message{Code: byte(gomilter.ActTempFail)}}
)

// Default SMTP replies for the verdicts.
const (
	DefaultDeny     = "550 5.7.1 Rejected by policy"
	DefaultDefer    = "451 4.7.1 Try again later"
	DefaultDrop     = "421 4.7.0 Connection closed by policy"
	DefaultInternal = "451 4.3.0 Temporary local problem, try again later"
)

// Limits of a custom reply (libmilter allows 32 lines; SMTP lines are at
// most 512 bytes with the code).
const (
	maxReplyLines    = 32
	maxReplyLineText = 400
)

// verdictReply turns an ACL verdict into the reply for the MTA, and says
// whether the connection is to be closed after it (drop).
func verdictReply(res acl.Result) (r gomilter.Response, closeAfter bool) {
	switch res.Verb {
	case acl.Accept:
		return replyContinue, false
	case acl.Discard:
		return replyDiscard, false
	case acl.Deny:
		return smtpReply(res.Message, DefaultDeny, false), false
	case acl.Drop:
		return smtpReply(res.Message, DefaultDrop, true), true
	}
	def := DefaultDefer
	if res.Err != nil {
		def = DefaultInternal
	}
	return smtpReply(res.Message, def, false), false
}

// smtpReply builds an SMFIR_REPLYCODE reply from an ACL message: an optional
// leading "NNN" and "X.Y.Z" replace the default's when they are of the same
// class (a deny cannot answer 2xx or 4xx); lines after newlines become a
// multi-line reply; "%" is doubled, as the MTAs require; control characters
// become spaces. force keeps the default's code (drop is always 421).
// go-milter's CustomResponse for SMFIR_REPLYCODE reports Continue, so it
// does not replace the handler either.
func smtpReply(message, def string, force bool) *gomilter.CustomResponse {
	defCode, defExt, defText := splitReply(def)
	code, ext, text := splitReply(message)
	if code == "" || code[0] != defCode[0] || force {
		code = defCode
	}
	if ext == "" || ext[0] != code[0] {
		ext = defExt
	}
	if strings.TrimSpace(text) == "" {
		text = defText
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for len(lines) > 1 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > maxReplyLines {
		lines = lines[:maxReplyLines]
	}
	var b strings.Builder
	for i, line := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(code)
		if i < len(lines)-1 {
			b.WriteByte('-')
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(ext)
		b.WriteByte(' ')
		writeReplyText(&b, line)
	}
	return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), b.String())
}

func writeReplyText(b *strings.Builder, line string) {
	line = strings.TrimRight(line, " \t\r")
	if len(line) > maxReplyLineText {
		line = line[:maxReplyLineText]
	}
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '%':
			b.WriteString("%%")
		case ch < ' ' || ch == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(ch)
		}
	}
}

// splitReply splits "550 5.7.1 text" into its code, enhanced status code and
// text; each part may be missing.
func splitReply(s string) (code, ext, text string) {
	s = strings.TrimLeft(s, " ")
	if len(s) >= 3 && isReplyCode(s[:3]) && (len(s) == 3 || s[3] == ' ' || s[3] == '-') {
		code = s[:3]
		s = s[min(len(s), 4):]
	}
	if word, rest, _ := strings.Cut(s, " "); isEnhancedCode(word) {
		ext = word
		s = rest
	}
	return code, ext, strings.TrimLeft(s, " ")
}

func isReplyCode(s string) bool {
	return len(s) == 3 && (s[0] == '4' || s[0] == '5') && isDigit(s[1]) && isDigit(s[2])
}

// isEnhancedCode reports whether s is an RFC 3463 status code for a
// failure: class "." subject "." detail, 1–3 digits each.
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		if _, err := strconv.Atoi(p); err != nil || p[0] == '+' || p[0] == '-' {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
