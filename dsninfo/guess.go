package dsninfo

import (
	"regexp"
	"strings"
)

// bounceHint reports whether the header says bounce: a From of
// MAILER-DAEMON or postmaster, or a Subject that bouncing MTAs write.
func bounceHint(t Top) bool {
	from := strings.ToLower(t.From)
	if strings.Contains(from, "mailer-daemon@") || strings.Contains(from, "<mailer-daemon") ||
		strings.Contains(from, "postmaster@") || strings.HasPrefix(strings.TrimSpace(from), "mailer-daemon") {
		return true
	}
	return bounceSubject.MatchString(t.Subject)
}

// bounceSubject are the subjects of the bounces of common MTAs (Postfix,
// Exim, Sendmail, qmail, Microsoft Exchange, Gmail).
var bounceSubject = regexp.MustCompile(`(?i)^\s*(undelivered mail returned to sender|mail delivery failed|returned mail:|` +
	`undeliverable:|undeliverable mail|delivery status notification \((failure|delay)\)|failure notice|` +
	`delivery failure|mail delivery failure|warning: could not send message|delayed mail|` +
	`mail system error|nondeliverable mail|delivery has failed)`)

// Patterns of the scan. RE2 matches in time linear in the line, and lines
// are capped at Limits.MaxLine.
var (
	// "550 5.1.1 <bob@example.org>: Recipient address rejected", "said: 550-5.1.1 ..."
	reEnhanced = regexp.MustCompile(`(?:^|[\s:(])([45][0-9][0-9])[ -]([45]\.[0-9]{1,3}\.[0-9]{1,3})(?:[\s:;,)]|$)`)
	// "550 hard error" on a line after "SMTP error from remote mail server", "said:"
	reBasic = regexp.MustCompile(`^\s*(?:.*\bsaid:\s*)?([45][0-9][0-9])[ -]\S`)
	// the context that makes a bare reply code a diagnostic
	reContext = regexp.MustCompile(`(?i)(\bsaid:|smtp error|remote host said|host .* said|reply was:|error from remote)`)
	reAngle   = regexp.MustCompile(`<([^<>\s@]{1,256}@[^<>\s@]{1,256})>`)
	reBare    = regexp.MustCompile(`^\s+([^<>\s@:]{1,256}@[^<>\s@:]{1,256})\s*:?\s*$`)
)

// scanner looks through bounce text for the recipients, reply codes and
// diagnostics of a plain-text bounce. It is conservative: a status is
// taken only from a line with an SMTP reply code, with an enhanced code
// or in a reply's context.
type scanner struct {
	lim, read int
	maxRcpt   int
	addr      string // the last address seen
	context   bool   // the previous line introduced a remote reply
	found     []Recipient
	more      int
}

func (s *scanner) line(l []byte) {
	if s.read >= s.lim {
		return
	}
	s.read += len(l) + 1
	text := string(l)
	if m := reBare.FindStringSubmatch(text); m != nil {
		s.addr = m[1]
		return
	}
	if ms := reAngle.FindAllStringSubmatch(text, -1); ms != nil {
		s.addr = ms[len(ms)-1][1]
	}
	hadContext := s.context
	s.context = reContext.MatchString(text)
	if m := reEnhanced.FindStringSubmatchIndex(text); m != nil {
		st, _ := ParseStatus(text[m[4]:m[5]])
		s.add(text[m[2]], st, text[m[2]:])
		return
	}
	if hadContext || s.context {
		if m := reBasic.FindStringSubmatchIndex(text); m != nil {
			s.add(text[m[2]], Status{}, text[m[2]:])
		}
	}
}

// add records a diagnostic for the last address seen, once per address:
// the action is guessed from the reply code's first digit (4: delayed,
// 5: failed).
func (s *scanner) add(code byte, st Status, diag string) {
	for i := range s.found {
		if s.found[i].FinalRecipient.Value == clean(s.addr) {
			if !s.found[i].Status.Valid() && st.Valid() {
				s.found[i].Status = st
			}
			return
		}
	}
	if len(s.found) >= s.maxRcpt {
		s.more++
		return
	}
	action := Failed
	if code == '4' {
		action = Delayed
	}
	s.found = append(s.found, Recipient{
		Action:         action,
		FinalRecipient: Typed{Value: clean(s.addr)},
		Status:         st,
		DiagnosticCode: Typed{Value: clean(diag)},
	})
}
