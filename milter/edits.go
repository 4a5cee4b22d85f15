package milter

import (
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/stage"
)

// applyEdits sends the changes the driver decided for an accepted message,
// all before the final reply (Postfix accepts header edits only at end of
// message), as far as the MTA allowed them at negotiation: deletions,
// additions (:at_start: ones at the top, in order), our
// Authentication-Results on top of all, discarded recipients, quarantine.
func (s *session) applyEdits(m *gomilter.Modifier, e *stage.Edits) {
	canChange := s.neg.actions&gomilter.OptChangeHeader != 0
	canAdd := s.neg.actions&gomilter.OptAddHeader != 0
	queueID := s.drv.Txn.QueueID

	dels := e.Delete
	if len(dels) > 0 && !canChange {
		s.logger.Warn("the MTA does not allow header changes: headers not removed", "queue_id", queueID, "count", len(dels))
		dels = nil
	}
	for _, d := range dels {
		m.ChangeHeader(d.Index, d.Name, "")
		s.edits = append(s.edits, "-"+d.Name)
	}

	atStart, atEnd, ar := e.AtStart, e.AtEnd, e.AuthResults
	if !canAdd && (len(atStart)+len(atEnd) > 0 || ar != nil) {
		s.logger.Warn("the MTA does not allow adding headers: headers not added", "queue_id", queueID)
		atStart, atEnd, ar = nil, nil, nil
	}
	for i := len(atStart) - 1; i >= 0; i-- { // each goes to the top: keep their order
		m.InsertHeader(0, atStart[i].Name, s.outValue(atStart[i].Value))
		s.edits = append(s.edits, "+"+atStart[i].Name)
	}
	for _, h := range atEnd {
		m.AddHeader(h.Name, s.outValue(h.Value))
		s.edits = append(s.edits, "+"+h.Name)
	}
	if ar != nil {
		m.InsertHeader(0, ar.Name, s.outValue(ar.Value))
		s.edits = append(s.edits, "+"+ar.Name)
	}

	if len(e.RemoveRcpts) > 0 {
		if s.neg.actions&gomilter.OptRemoveRcpt != 0 {
			for _, r := range e.RemoveRcpts {
				m.DeleteRecipient(r)
			}
		} else {
			s.logger.Error("the MTA does not allow removing recipients: discarded recipients will get the message",
				"queue_id", queueID, "recipients", e.RemoveRcpts)
		}
	}

	if e.Quarantine {
		if s.neg.actions&gomilter.OptQuarantine != 0 {
			m.Quarantine(e.QuarantineReason)
			s.quarantine = e.QuarantineReason
		} else {
			s.logger.Error("the MTA does not allow quarantine: message not quarantined", "queue_id", queueID, "reason", e.QuarantineReason)
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
