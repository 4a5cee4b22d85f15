package checks

// The DMARC history file (dmarc_history_file): one OpenDMARC 1.4 record
// per message DMARC evaluated, written when the message has ended, with
// what was done with it (the "action"), for opendmarc-import and
// sidecar's reports; with dmarc_history_format = sidecar the record
// goes on with what RFC 9990 reports need and OpenDMARC does not write.
//
// A compiled Program only knows the file's path. The daemon attaches each
// Program it runs (acl.Program.Attach, at start and on every reload), which
// takes the shared report.HistorySink of that path; a Program never
// attached (check-config, sidecar check) writes nothing. The file is opened
// at the first record and reopened at every attach: that is the SIGHUP
// rotation.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/results"
)

// Attach takes the history file of dmarc_history_file (acl.Attacher).
func (s *dmarcSettings) Attach() error {
	if s.HistoryPath == "" {
		return nil
	}
	sink, err := report.AcquireHistory(s.HistoryPath)
	if old := s.hist.Swap(sink); old != nil {
		old.Release()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", OptDMARCHistoryFile, err)
	}
	return nil
}

// Detach stops writing history records and releases the file.
func (s *dmarcSettings) Detach() error {
	if old := s.hist.Swap(nil); old != nil {
		return old.Release()
	}
	return nil
}

// HistoryPath returns the history file prog writes to, or "" when it
// writes none.
func HistoryPath(prog *acl.Program) string {
	if s, ok := prog.Feature(dmarcFeature).(*dmarcSettings); ok {
		if sink := s.hist.Load(); sink != nil {
			return sink.Path()
		}
	}
	return ""
}

// historyAction is the history file's "action" for what finally happened
// to the message.
func historyAction(e acl.Ending) int {
	switch {
	case e.Quarantined:
		return report.HistoryActionQuarantine
	case e.Verb == acl.Deny || e.Verb == acl.Drop:
		return report.HistoryActionReject
	case e.Verb == acl.Defer:
		return report.HistoryActionTempFail
	case e.Verb == acl.Discard:
		return report.HistoryActionDiscard
	}
	return report.HistoryActionAccept
}

// historyRecord builds the record of a message's DMARC evaluation.
func historyRecord(t *acl.Txn, e *results.DMARC, end acl.Ending) *report.HistoryRecord {
	r := report.NewHistoryRecord(e.Input, e.Outcome)
	r.Action = historyAction(end)
	r.JobID = t.QueueID
	r.Reporter = t.Services.PrimaryHostname
	r.Received, r.IPAddr = messageEnd(t), clientAddr(t)
	r.MailFrom = t.SenderDomain()
	// ARC, as OpenDMARC writes it: arc 0 when the chain passes, else 7
	// (fail); arc_policy 0 when the chain's sealers are trusted (here: the
	// trusted-sealer override applied), else 2; the seals, oldest first.
	if c := t.Results.ARC.Chain; c != nil {
		if c.State == arc.Pass && !c.Temp {
			r.ARC = report.ARESPass
		}
		for _, in := range c.Instances {
			if in.ASDomain != "" {
				r.ARCSeals = append(r.ARCSeals, report.ARCSeal{Instance: in.I, Domain: in.ASDomain, Selector: in.ASSelector})
			}
		}
	}
	if e.Override != nil {
		r.ARCPolicy = 0
	}
	if dmarcSettingsOf(t).HistoryFormat == report.FormatSidecar {
		r.Ext = historyExt(t, e, r.Action)
	}
	return r
}

// historyExt is the sidecar format's part of the record: the identity
// SPF checked, the recipients' domains, the record's other tags and the
// override reasons.
func historyExt(t *acl.Txn, e *results.DMARC, action int) *report.HistoryExt {
	x := report.ExtFromOutcome(e.Outcome)
	if e.Input.SPF.Result != "" {
		x.SPFDomain, x.SPFScope = strings.ToLower(e.Input.SPF.Domain), report.SPFScopeMailFrom
		if t.Sender == "" {
			x.SPFScope = report.SPFScopeHelo // RFC 9989 §3.2.4: HELO for the null sender
		}
	}
	for _, rcpt := range t.Recipients {
		_, d, _ := strings.Cut(rcpt, "@")
		if d = strings.ToLower(d); d != "" && !slices.Contains(x.RcptDomains, d) {
			x.RcptDomains = append(x.RcptDomains, d)
		}
	}
	x.Override = overrideReasons(e, action, viaMailingList(t))
	return x
}

// overrideReasons say why a DMARC failure got other than its policy
// (RFC 9990 policy_override_reason): trusted_forwarder when
// dmarc_arc_trusted_sealers overrode it; sampled_out when t=y or pct=
// lowered the policy to apply; other when the message was deferred
// although the policy asked to reject or quarantine it; local_policy when
// the message got another disposition than the policy to apply —
// mailing_list instead when the message came through a mailing list, the
// case RFC 9990 names for it (a list that rewrites the subject or body
// breaks the author's DKIM signature, and its own server fails SPF for
// the author's domain).
func overrideReasons(e *results.DMARC, action int, viaList bool) []report.OverrideReason {
	o := e.Outcome
	if o.Result != dmarc.Fail {
		return nil
	}
	if e.Override != nil {
		return []report.OverrideReason{report.OverrideTrustedForwarder}
	}
	var rs []report.OverrideReason
	if o.Disposition != o.Policy {
		rs = append(rs, report.OverrideSampledOut)
	}
	got := dmarc.PolicyNone
	switch action {
	case report.HistoryActionReject, report.HistoryActionDiscard:
		got = dmarc.PolicyReject
	case report.HistoryActionQuarantine:
		got = dmarc.PolicyQuarantine
	case report.HistoryActionTempFail:
		if o.Disposition != dmarc.PolicyNone {
			rs = append(rs, report.OverrideOther)
		}
		return rs
	}
	switch {
	case got == o.Disposition:
	case viaList:
		rs = append(rs, report.OverrideMailingList)
	default:
		rs = append(rs, report.OverrideLocalPolicy)
	}
	return rs
}

// viaMailingList reports whether the message bears the fields a mailing
// list adds: List-Id (RFC 2919) or List-Post (RFC 2369).
func viaMailingList(t *acl.Txn) bool {
	return len(t.Header("List-Id")) > 0 || len(t.Header("List-Post")) > 0
}

// writeHistory is the DMARC finisher: the record of a message whose DMARC
// was evaluated, once it has ended, when the Program is attached to a
// history file. A message that never reached its end writes none.
func writeHistory(t *acl.Txn, end acl.Ending) error {
	e := t.Results.DMARC
	if e == nil || end.Aborted || e.Outcome.Status == dmarc.StatusOff || e.Outcome.Status == dmarc.StatusNoFrom {
		return nil
	}
	sink := dmarcSettingsOf(t).hist.Load()
	if sink == nil {
		return nil
	}
	if err := sink.Append(historyRecord(t, e, end)); err != nil {
		return fmt.Errorf("DMARC history file: %w", err)
	}
	return nil
}

// messageEnd is when the message ended, by the services' clock.
func messageEnd(t *acl.Txn) time.Time {
	if t.Services.Now != nil {
		return t.Services.Now()
	}
	return time.Now()
}

// clientAddr is the client's IP address as text, "" for a local
// submission.
func clientAddr(t *acl.Txn) string {
	if t.Conn.ClientIP.IsValid() {
		return t.Conn.ClientIP.Unmap().String()
	}
	return ""
}
