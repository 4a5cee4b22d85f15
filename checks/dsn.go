package checks

import (
	"context"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/dsninfo"
	"github.com/mailsidecar/sidecar/results"
)

// DSN: delivery status notifications passing through the MTA are parsed
// (dsninfo) for the ACLs and the log, and the RFC 3461 parameters of every
// transaction are shown.

// dsnActions are the words of the dsn_action condition: RFC 3464's
// actions, and none for a message that carries no report.
var dsnActions = []string{"failed", "delayed", "delivered", "relayed", "expanded", "none"}

func registerDSN(reg *acl.Registry) {
	reg.AddBodyHook(acl.BodyHook{Name: "dsn", Start: func(t *acl.Txn) acl.BodyWriter {
		if w := StartDSN(t); w != nil {
			return w
		}
		return nil
	}})
	reg.Condition(acl.CondDef{Name: "dsn_action", Stages: acl.OnlyData,
		Doc: "the message is a delivery status notification with a recipient whose Action is in the list: " +
			strings.Join(dsnActions, " ") + " (none: no report); the $dsn_ variables then show that recipient",
		Compile: func(cc *acl.CondCompile) (acl.CondFunc, error) {
			match, err := cc.ResultList(dsnActions, nil)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, t *acl.Txn) (bool, error) {
				d := t.Results.DSN
				if d == nil || !d.Report.IsReport() || len(d.Report.Recipients) == 0 {
					return match(ctx, t, "none")
				}
				for i, rc := range d.Report.Recipients {
					ok, err := match(ctx, t, string(rc.Action))
					if err != nil || ok {
						if ok {
							d.Current = i
						}
						return ok, err
					}
				}
				return false, nil
			}, nil
		}})
	rcptVar := func(f func(r *dsninfo.Report, rc *dsninfo.Recipient) string) func(_ context.Context, t *acl.Txn) (string, error) {
		return func(_ context.Context, t *acl.Txn) (string, error) {
			r, rc := ShownDSN(t)
			if rc == nil {
				return "", nil
			}
			return f(r, rc), nil
		}
	}
	reportVar := func(f func(r *dsninfo.Report) string) func(_ context.Context, t *acl.Txn) (string, error) {
		return func(_ context.Context, t *acl.Txn) (string, error) {
			if r := t.Results.DSNReport(); r.IsReport() {
				return f(r), nil
			}
			return "", nil
		}
	}
	for _, d := range []acl.VarDef{
		{Name: "dsn_kind", Doc: "what the message is: dsn (an RFC 3464 report), guessed (a plain-text bounce), unparsed (a report that could not be read), or empty",
			Get: reportVar(func(r *dsninfo.Report) string { return string(r.Kind) })},
		{Name: "dsn_action", Doc: "the Action of the recipient shown: failed, delayed, delivered, relayed, expanded",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return string(rc.Action) })},
		{Name: "dsn_status", Doc: "the recipient's RFC 3463 Status code, 5.1.1",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return rc.Status.String() })},
		{Name: "dsn_status_text", Doc: "what the Status code means: permanent failure: bad destination mailbox address",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return rc.Status.Meaning() })},
		{Name: "dsn_recipient", Doc: "the recipient's address (Final-Recipient, else Original-Recipient)",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return rc.Address() })},
		{Name: "dsn_remote_mta", Doc: "the Remote-MTA that answered for the recipient (Exim's X-ip address when there is no other)",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return remoteMTA(rc) })},
		{Name: "dsn_diagnostic", Doc: "the recipient's Diagnostic-Code, without its type: 550 5.1.1 <bob@example.org>: ...",
			Get: rcptVar(func(_ *dsninfo.Report, rc *dsninfo.Recipient) string { return rc.DiagnosticCode.Value })},
		{Name: "dsn_reporting_mta", Doc: "the Reporting-MTA of the report",
			Get: reportVar(func(r *dsninfo.Report) string { return r.ReportingMTA.Value })},
		{Name: "dsn_original_message_id", Doc: "the Message-ID of the message the report is about, without angle brackets",
			Get: reportVar(func(r *dsninfo.Report) string { return r.Original.MessageID })},
		{Name: "dsn_original_envid", Doc: "the report's Original-Envelope-Id: the ENVID the bounced message was sent with",
			Get: reportVar(func(r *dsninfo.Report) string { return r.OriginalEnvelopeID })},
	} {
		d.Stages = acl.OnlyData
		reg.Variable(d)
	}
	reg.Variable(acl.VarDef{Name: "dsn_ret", Stages: acl.FromMail, Doc: "RET of MAIL FROM (RFC 3461): FULL, HDRS or empty",
		Get: func(_ context.Context, t *acl.Txn) (string, error) {
			return dsninfo.ParseEnvelope(t.MailParams()).Ret, nil
		}})
	reg.Variable(acl.VarDef{Name: "dsn_envid", Stages: acl.FromMail, Doc: "ENVID of MAIL FROM (RFC 3461), decoded",
		Get: func(_ context.Context, t *acl.Txn) (string, error) {
			return dsninfo.ParseEnvelope(t.MailParams()).EnvID, nil
		}})
	reg.Variable(acl.VarDef{Name: "dsn_notify", Stages: acl.OnlyRcpt, Doc: "NOTIFY of the recipient being checked (RFC 3461): NEVER, or SUCCESS,FAILURE,DELAY",
		Get: func(_ context.Context, t *acl.Txn) (string, error) {
			return dsninfo.ParseRcptRequest(t.RcptParams()).NotifyString(), nil
		}})
	reg.Variable(acl.VarDef{Name: "dsn_orcpt", Stages: acl.OnlyRcpt, Doc: "ORCPT of the recipient being checked (RFC 3461), decoded: rfc822;bob@example.org",
		Get: func(_ context.Context, t *acl.Txn) (string, error) {
			o := dsninfo.ParseRcptRequest(t.RcptParams()).ORCPT
			if o.Type == "" {
				return o.Value, nil
			}
			return o.Type + ";" + o.Value, nil
		}})
}

func remoteMTA(rc *dsninfo.Recipient) string {
	if rc.RemoteMTA.Value != "" {
		return rc.RemoteMTA.Value
	}
	return rc.RemoteIP
}

// ShownDSN returns the report of the message and the recipient the $dsn_
// variables show, or nils.
func ShownDSN(t *acl.Txn) (*dsninfo.Report, *dsninfo.Recipient) {
	d := t.Results.DSN
	if d == nil {
		return nil, nil
	}
	if !d.Report.IsReport() || d.Current < 0 || d.Current >= len(d.Report.Recipients) {
		return d.Report, nil
	}
	return d.Report, &d.Report.Recipients[d.Current]
}

// DSNBody parses the body of a message that looks like a delivery status
// notification as it streams past (the milter's body writer).
type DSNBody struct {
	p   *dsninfo.Parser
	res *results.Message
}

// StartDSN starts parsing the body of the message in t, whose header is
// complete, when it may be a delivery status notification: its envelope
// sender is <> or its Content-Type is multipart/report. Other messages
// get nil, at the cost of one look through the header's field names.
func StartDSN(t *acl.Txn) *DSNBody {
	var top dsninfo.Top
	top.NullSender = t.HasSender && t.Sender == ""
	for _, h := range t.Headers {
		if len(h.Name) == len("Content-Type") && strings.EqualFold(h.Name, "Content-Type") && top.ContentType == "" {
			top.ContentType = h.Value
		}
	}
	if !top.NullSender && !isReportType(top.ContentType) {
		return nil
	}
	for _, h := range t.Headers {
		switch {
		case strings.EqualFold(h.Name, "Content-Transfer-Encoding"):
			top.ContentTransferEncoding = h.Value
		case strings.EqualFold(h.Name, "From"):
			top.From = h.Value
		case strings.EqualFold(h.Name, "Subject"):
			top.Subject = h.Value
		}
	}
	return &DSNBody{p: dsninfo.NewParser(top, dsninfo.Limits{}), res: t.Results}
}

func isReportType(ct string) bool {
	ct = strings.TrimSpace(ct)
	const mt = "multipart/report"
	return len(ct) >= len(mt) && strings.EqualFold(ct[:len(mt)], mt)
}

// Write implements acl.BodyWriter.
func (b *DSNBody) Write(p []byte) (int, error) { return b.p.Write(p) }

// End implements acl.BodyWriter: the report is kept for the DATA ACL and
// the log.
func (b *DSNBody) End() error {
	b.res.DSN = &results.DSN{Report: b.p.Close()}
	return nil
}

// Abort implements acl.BodyWriter.
func (b *DSNBody) Abort() {}
