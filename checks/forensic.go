package checks

// DMARC failure reports (RFC 9991): when a message fails DMARC, the
// policy's fo= asks for a report, its record has ruf= destinations and an
// ACL set control = dmarc_enable_forensic, the finisher writes the report
// into the spool (dmarc_forensic_spool) and nothing more: the daemon's
// background sender delivers it. Nothing here waits on the network, and a
// report that cannot be spooled (rate limit, full or unwritable spool) is
// dropped and logged; the message is never delayed for it.

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/forensic"
	"github.com/mailsidecar/sidecar/results"
)

const forensicControl = "dmarc_enable_forensic"

// forensicSettings are the failure report options of a configuration.
type forensicSettings struct {
	sender      *expand.Expr // dmarc_forensic_sender; nil when unset
	spool       string
	rate        forensic.Rate
	includeBody bool
	redact      *forensic.Redactor // nil unless dmarc_forensic_redact
}

// forensicSettingsFrom compiles the failure report options.
func forensicSettingsFrom(reg *acl.Registry, cfg *config.Config) (forensicSettings, error) {
	s := forensicSettings{spool: cfg.String(forensic.OptSpool), includeBody: cfg.Bool(forensic.OptIncludeBody)}
	if cfg.Bool(forensic.OptRedact) {
		s.redact = forensic.NewRedactor()
	}
	s.rate, _ = forensic.ParseRate(cfg.String(forensic.OptRate)) // checked by the option
	if strings.TrimSpace(cfg.Get(OptDMARCForensicSender).Value.Text) == "" {
		return s, nil
	}
	self := func(name string) (expand.Getter, bool, error) {
		if name == "dmarc_forensic_sender" {
			return nil, false, errors.New("$dmarc_forensic_sender is the value of dmarc_forensic_sender itself")
		}
		return nil, false, nil
	}
	e, err := reg.CompileOption(cfg, OptDMARCForensicSender, acl.OnlyData, self)
	if err != nil {
		return s, err
	}
	if v, ok := e.Constant(); ok {
		if err := checkSender(v); err != nil {
			return s, config.ErrorList{cfg.ErrorAt(cfg.Get(OptDMARCForensicSender).Value.Pos,
				"%s: %v (for example: %s = dmarc-noreply@example.net)", OptDMARCForensicSender, err, OptDMARCForensicSender)}
		}
	}
	s.sender = e
	return s, nil
}

// checkSender accepts a bare address local@domain.
func checkSender(v string) error {
	if a, err := mail.ParseAddress(v); err != nil || a.Name != "" || a.Address != v || !strings.Contains(v, "@") {
		return fmt.Errorf("%q is not an address", v)
	}
	return nil
}

// senderTimeout bounds the expansion of dmarc_forensic_sender at the
// end of a message (it may look something up).
const senderTimeout = time.Second

// forensicSender is dmarc_forensic_sender expanded for the message, or
// do-not-reply@primary_hostname.
func forensicSender(ctx context.Context, t *acl.Txn) (string, error) {
	e := dmarcSettingsOf(t).forensic.sender
	if e == nil {
		return "do-not-reply@" + t.Services.PrimaryHostname, nil
	}
	v, err := e.Eval(ctx, t)
	if err != nil {
		return "", fmt.Errorf("%s: %w", OptDMARCForensicSender, err)
	}
	return strings.TrimSpace(v), nil
}

// forensicWanted reports whether an ACL asked for failure reports for
// the message (or its connection).
func forensicWanted(t *acl.Txn) bool {
	if _, ok := t.Control(forensicControl); ok {
		return true
	}
	_, ok := t.Conn.Control(forensicControl)
	return ok
}

// forensicBodies holds the body prefix of the messages that may be
// reported with their body, until the message is closed. Only messages
// with the control set and dmarc_forensic_include_body are in it.
var forensicBodies sync.Map // *results.Message -> *bodyPrefix

type bodyPrefix struct {
	buf       []byte
	truncated bool
}

func (b *bodyPrefix) Write(p []byte) (int, error) {
	room := forensic.MaxBodyBytes - len(b.buf)
	if len(p) > room {
		b.buf = append(b.buf, p[:max(room, 0)]...)
		b.truncated = true
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *bodyPrefix) End() error { return nil }
func (b *bodyPrefix) Abort()     {}

// startBodyPrefix is the body hook: it keeps a bounded prefix of the body
// only when a report may carry it.
func startBodyPrefix(t *acl.Txn) acl.BodyWriter {
	if !dmarcSettingsOf(t).forensic.includeBody || !forensicWanted(t) {
		return nil
	}
	b := &bodyPrefix{}
	m := t.Results
	forensicBodies.Store(m, b)
	m.OnClose(func() { forensicBodies.Delete(m) })
	return b
}

// deliveryResults are RFC 6591's Delivery-Result for each history
// action: what the message got.
var deliveryResults = map[int]forensic.DeliveryResult{
	report.HistoryActionQuarantine: forensic.Spam,
	report.HistoryActionReject:     forensic.Reject,
	report.HistoryActionDiscard:    forensic.Policy,
	report.HistoryActionAccept:     forensic.Delivered,
	report.HistoryActionTempFail:   forensic.Other,
}

func deliveryResult(e acl.Ending) forensic.DeliveryResult { return deliveryResults[historyAction(e)] }

var userAgent = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return "sidecar/" + bi.Main.Version
	}
	return "sidecar"
})

// failureReport builds the report of a failed message.
func failureReport(t *acl.Txn, e *results.DMARC, end acl.Ending, why, sender string, redact *forensic.Redactor) *forensic.Report {
	o := &e.Outcome
	r := &forensic.Report{
		Sender: sender, ReportingMTA: t.Services.PrimaryHostname, UserAgent: userAgent(),
		EnvelopeID: t.QueueID, MailFrom: t.Sender, FromDomain: o.FromDomain, PolicyDomain: o.UsedDomain,
		AuthResults: authres.Format(authservID(t), t.AuthResults),
		AlignSPF:    o.AlignSPF, AlignDKIM: o.AlignDKIM, SPF: e.Input.SPF.Result,
		FailureOption: why, DeliveryResult: deliveryResult(end),
	}
	if o.PolicyDomain != "" {
		r.PolicyDomain = o.PolicyDomain
	}
	r.Arrival, r.SourceIP = messageEnd(t), clientAddr(t)
	for _, k := range e.Input.DKIM {
		r.DKIM = append(r.DKIM, forensic.DKIMSignature{Domain: k.Domain, Selector: k.Selector, Result: k.Result})
	}
	var h []byte
	for _, f := range t.Headers {
		v := f.Value
		if redact != nil {
			v = redact.Field(f.Name, v)
		}
		line := f.Name + ":" + v + "\r\n"
		if len(h)+len(line) > forensic.MaxHeaderBytes {
			r.HeaderTruncated = true
			break
		}
		h = append(h, line...)
	}
	r.Header = h
	if v, ok := forensicBodies.Load(t.Results); ok {
		b := v.(*bodyPrefix)
		r.IncludeBody, r.Body, r.BodyTruncated = true, b.buf, b.truncated
	}
	return r
}

// spoolFailureReport is the failure report finisher.
func spoolFailureReport(t *acl.Txn, end acl.Ending) error {
	e := t.Results.DMARC
	if e == nil || end.Aborted || !forensicWanted(t) {
		return nil
	}
	why, ok := forensic.Wanted(e.Input, e.Outcome)
	if !ok {
		return nil
	}
	s := dmarcSettingsOf(t).forensic
	domain := e.Outcome.PolicyDomain
	if domain == "" {
		domain = e.Outcome.UsedDomain
	}
	spool, err := forensic.OpenSpool(s.spool)
	if err != nil {
		return fmt.Errorf("DMARC failure report for %s dropped: %w", domain, err)
	}
	now := time.Now()
	if !spool.Allow(domain, s.rate, now) {
		forensic.Count(forensic.ResultRateLimited)
		return fmt.Errorf("DMARC failure report for %s dropped: %s %s reached", domain, forensic.OptRate, s.rate)
	}
	ctx, cancel := context.WithTimeout(context.Background(), senderTimeout)
	defer cancel()
	sender, err := forensicSender(ctx, t)
	if err == nil {
		err = checkSender(sender)
	}
	if err != nil {
		forensic.Count(forensic.ResultSpoolError)
		return fmt.Errorf("DMARC failure report for %s dropped: %s: %w", domain, OptDMARCForensicSender, err)
	}
	entry := &forensic.Entry{Report: *failureReport(t, e, end, why, sender, s.redact), RUF: slices.Clone(e.Outcome.Record.RUF), Created: now}
	if err := spool.Add(entry); err != nil {
		return fmt.Errorf("DMARC failure report for %s dropped: %w", domain, err)
	}
	return nil
}
