package milter

import (
	"sort"
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/authres"
)

// headerEdit is one header to add.
type headerEdit struct {
	name, value string // value: the raw text after the colon
}

// finishMessage sends the modifications of an accepted message, all before
// the final reply (Postfix accepts header edits only at end of message):
// deletions (remove_header, and Authentication-Results headers forged with
// our authserv-id or one of StripIDs), additions (add_header; :at_start:
// above the others), discarded recipients, our Authentication-Results
// header at the top, and quarantine.
func (s *session) finishMessage(m *gomilter.Modifier) {
	canChange := s.neg.actions&gomilter.OptChangeHeader != 0
	canAdd := s.neg.actions&gomilter.OptAddHeader != 0

	dels := s.headerDeletions()
	if len(dels) > 0 && !canChange {
		s.logger.Warn("the MTA does not allow header changes: headers not removed", "queue_id", s.txn.QueueID, "count", len(dels))
		dels = nil
	}
	for _, d := range dels {
		m.ChangeHeader(d.index, d.name, "")
		s.msg.edits = append(s.msg.edits, "-"+d.name)
	}

	var atStart, atEnd []headerEdit
	for _, ah := range s.txn.AddHeaders {
		hs := splitAddedHeader(ah.Text)
		if ah.AtStart {
			atStart = append(atStart, hs...)
		} else {
			atEnd = append(atEnd, hs...)
		}
	}
	arWanted := s.env.AuthservID != ""
	if !canAdd && (len(atStart)+len(atEnd) > 0 || arWanted) {
		s.logger.Warn("the MTA does not allow adding headers: headers not added", "queue_id", s.txn.QueueID)
		atStart, atEnd, arWanted = nil, nil, false
	}
	for i := len(atStart) - 1; i >= 0; i-- { // each goes to the top: keep their order
		m.InsertHeader(0, atStart[i].name, s.outValue(atStart[i].value))
		s.msg.edits = append(s.msg.edits, "+"+atStart[i].name)
	}
	for _, h := range atEnd {
		m.AddHeader(h.name, s.outValue(h.value))
		s.msg.edits = append(s.msg.edits, "+"+h.name)
	}
	if arWanted {
		m.InsertHeader(0, authres.HeaderName, s.outValue(authres.Format(s.env.AuthservID, s.txn.AuthResults)))
		s.msg.edits = append(s.msg.edits, "+"+authres.HeaderName)
	}

	if len(s.msg.discarded) > 0 {
		if s.neg.actions&gomilter.OptRemoveRcpt != 0 {
			for _, r := range s.msg.discarded {
				m.DeleteRecipient(r)
			}
		} else {
			s.logger.Error("the MTA does not allow removing recipients: discarded recipients will get the message",
				"queue_id", s.txn.QueueID, "recipients", s.msg.discarded)
		}
	}

	if reason, ok := s.txn.Control("quarantine"); ok {
		if reason == "" {
			reason = "quarantined by policy"
		}
		if s.neg.actions&gomilter.OptQuarantine != 0 {
			m.Quarantine(sanitizeLine(reason))
			s.msg.quarantine = reason
		} else {
			s.logger.Error("the MTA does not allow quarantine: message not quarantined", "queue_id", s.txn.QueueID, "reason", reason)
		}
	}
}

// outValue is a header value as the MTA expects it: with its leading space
// when SMFIP_HDR_LEADSPC was agreed on (the MTA then writes "Name:" and the
// value as is), without it otherwise (the MTA writes "Name: ").
func (s *session) outValue(v string) string {
	if s.neg.has(gomilter.OptHeaderLeadingSpace) {
		return v
	}
	return strings.TrimLeft(v, " \t")
}

type headerDeletion struct {
	name  string
	index int // 1-based among the fields of that name
}

// headerDeletions lists the header fields to delete, with go-milter's
// 1-based per-name index, the highest index first so that each deletion
// leaves the indexes of the others unchanged, whichever way the MTA counts
// deleted fields.
func (s *session) headerDeletions() []headerDeletion {
	var dels []headerDeletion
	var count map[string]int
	for _, h := range s.txn.Headers {
		ar := strings.EqualFold(h.Name, authres.HeaderName)
		rm := false
		for _, name := range s.txn.RemoveHeaders {
			if strings.EqualFold(h.Name, name) {
				rm = true
				break
			}
		}
		if !ar && !rm {
			continue
		}
		if count == nil {
			count = map[string]int{}
		}
		key := strings.ToLower(h.Name)
		count[key]++
		if rm || (ar && s.foreignAuthResults(h.Value)) {
			dels = append(dels, headerDeletion{h.Name, count[key]})
		}
	}
	sort.SliceStable(dels, func(i, j int) bool { return dels[i].index > dels[j].index })
	return dels
}

// foreignAuthResults reports whether an incoming Authentication-Results
// header claims to be ours (RFC 8601 §5: such headers must be removed, or
// a forged "dkim=pass" would be trusted downstream) or carries one of the
// ids configured for removal.
func (s *session) foreignAuthResults(value string) bool {
	id := authres.AuthservID(value)
	if id == "" {
		return false
	}
	if authres.SameAuthservID(id, s.env.AuthservID) {
		return true
	}
	for _, strip := range s.env.StripIDs {
		if authres.SameAuthservID(id, strip) {
			return true
		}
	}
	return false
}

// splitAddedHeader turns the text of an add_header into header fields. As
// in Exim, the text may hold several fields separated by newlines; a line
// starting with a space or tab continues the field before it; a line that
// does not start with a field name gets "X-ACL-Warn:" in front.
func splitAddedHeader(text string) []headerEdit {
	var out []headerEdit
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		line = sanitizeLine(line)
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].value += "\r\n" + line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isFieldName(name) {
			name, value = "X-ACL-Warn", " "+strings.TrimLeft(line, " \t")
		}
		out = append(out, headerEdit{name, value})
	}
	return out
}

// isFieldName reports whether s is an RFC 5322 field name.
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':' {
			return false
		}
	}
	return true
}

// sanitizeLine replaces control characters other than tab (NUL would end
// the milter string) with spaces.
func sanitizeLine(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; (c < ' ' && c != '\t') || c == 0x7f {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return s
}
