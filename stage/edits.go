package stage

import (
	"sort"
	"strings"

	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/internal/ascii"
)

// Field is one header field to add: its name and its value as the text
// after the colon, starting with a space (as it is written).
type Field struct {
	Name, Value string
}

// FieldRef names a header field of the message: its name and its 1-based
// index among the fields of that name (as milter counts them).
type FieldRef struct {
	Name  string
	Index int
}

// Edits are the changes to an accepted message, in the order they are
// made. Each AtStart field is inserted at the top, so that in the end
// they stand in list order above the others; AuthResults, ours, goes on
// top of all.
type Edits struct {
	// Delete are the fields to remove (remove_header, and
	// Authentication-Results fields forged with our authserv-id or one of
	// StripIDs), highest index first so that each deletion leaves the
	// indexes of the others unchanged, whichever way the MTA counts.
	Delete      []FieldRef
	AtStart     []Field // add_header :at_start:, ARC sets, Received-SPF
	AtEnd       []Field // add_header
	AuthResults *Field  // our Authentication-Results; nil without authserv-id
	// RemoveRcpts are the recipients discarded at RCPT.
	RemoveRcpts []string
	// Quarantine: hold the message, for QuarantineReason.
	Quarantine       bool
	QuarantineReason string
}

// edits computes the changes to the message the DATA ACL accepted.
func (d *Driver) edits() *Edits {
	t := d.Txn
	e := &Edits{Delete: d.deletions(), RemoveRcpts: append([]string(nil), d.Msg.Discarded...)}
	for _, ah := range t.AddHeaders {
		fs := splitAddedHeader(ah.Text)
		if ah.AtStart {
			e.AtStart = appendFields(e.AtStart, fs)
		} else {
			e.AtEnd = appendFields(e.AtEnd, fs)
		}
	}
	if d.env.AuthservID != "" {
		e.AuthResults = &Field{authres.HeaderName, authres.Format(d.env.AuthservID, t.AuthResults)}
	}
	if reason, ok := t.Control("quarantine"); ok {
		if reason == "" {
			reason = "quarantined by policy"
		}
		e.Quarantine, e.QuarantineReason = true, sanitizeLine(reason)
	}
	return e
}

// appendFields is append(dst, fs...), taking fs itself when dst is empty
// (fs is the caller's own).
func appendFields(dst, fs []Field) []Field {
	if len(dst) == 0 {
		return fs
	}
	return append(dst, fs...)
}

// deletions lists the header fields to delete.
func (d *Driver) deletions() []FieldRef {
	var dels []FieldRef
	var count map[string]int
	for _, h := range d.Txn.Headers {
		ar := strings.EqualFold(h.Name, authres.HeaderName)
		rm := false
		for _, name := range d.Txn.RemoveHeaders {
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
		if rm || (ar && d.forgedAuthResults(h.Value)) {
			dels = append(dels, FieldRef{h.Name, count[key]})
		}
	}
	if len(dels) > 1 {
		sort.SliceStable(dels, func(i, j int) bool { return dels[i].Index > dels[j].Index })
	}
	return dels
}

// forgedAuthResults reports whether an incoming Authentication-Results
// field claims to be ours (RFC 8601 §5: such fields must be removed, or a
// forged "dkim=pass" would be trusted downstream) or carries one of the
// ids configured for removal.
func (d *Driver) forgedAuthResults(value string) bool {
	id := authres.AuthservID(value)
	if id == "" {
		return false
	}
	if authres.SameAuthservID(id, d.env.AuthservID) {
		return true
	}
	for _, strip := range d.env.StripIDs {
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
func splitAddedHeader(text string) []Field {
	lines := []string{text} // the usual one-line text, without splitting
	if strings.IndexByte(text, '\n') >= 0 || strings.IndexByte(text, '\r') >= 0 {
		lines = strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	}
	var out []Field
	for _, line := range lines {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		line = sanitizeLine(line)
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Value += "\r\n" + line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !ascii.FieldName(name) {
			name, value = "X-ACL-Warn", " "+strings.TrimLeft(line, " \t")
		}
		out = append(out, Field{name, value})
	}
	return out
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
