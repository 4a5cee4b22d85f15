package milter

import (
	"context"
	"log/slog"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/dsninfo"
)

// The DSN fields of the transaction line (group dsn), present when set:
//
//	dsn.ret     RET of MAIL FROM (FULL, HDRS)
//	dsn.envid   ENVID of MAIL FROM, decoded
//	dsn.notify  per accepted recipient with a NOTIFY: "rcpt NOTIFY" (text) / list (JSON)
//	dsn.orcpt   per accepted recipient with an ORCPT: "rcpt type;address"
//	dsn.kind    for a message parsed as a DSN: dsn, guessed, unparsed
//	dsn.bounced the recipients it reports as failed or delayed
//
// And one line per recipient a DSN reports as failed or delayed,
// msg=bounce, with the fields of bounceAttrs.

// Bounds of the DSN log lines.
const (
	maxBounceLines = 100  // msg=bounce lines per message; the last says how many more
	maxBounceValue = 1000 // bytes of one logged value
)

// dsnAttrs returns the dsn group of the transaction line.
func dsnAttrs(t *acl.Txn) []slog.Attr {
	var g []any
	env := dsninfo.ParseEnvelope(t.MailParams())
	if env.Ret != "" {
		g = append(g, slog.String("ret", env.Ret))
	}
	if env.EnvID != "" {
		g = append(g, slog.String("envid", clipLog(env.EnvID, maxBounceValue)))
	}
	var notify, orcpt []string
	for i, params := range t.RecipientParams() {
		if i >= len(t.Recipients) || len(params) == 0 {
			continue
		}
		req := dsninfo.ParseRcptRequest(params)
		if len(req.Notify) > 0 {
			notify = append(notify, t.Recipients[i]+" "+req.NotifyString())
		}
		if req.ORCPT.Value != "" {
			orcpt = append(orcpt, t.Recipients[i]+" "+clipLog(req.ORCPT.Type+";"+req.ORCPT.Value, maxBounceValue))
		}
	}
	if notify != nil {
		g = append(g, slog.Any("notify", notify))
	}
	if orcpt != nil {
		g = append(g, slog.Any("orcpt", orcpt))
	}
	if r := t.Results.DSNReport(); r.IsReport() {
		g = append(g, slog.String("kind", string(r.Kind)), slog.Int("bounced", len(r.Bounced())))
	}
	if g == nil {
		return nil
	}
	return []slog.Attr{slog.Group("dsn", g...)}
}

// logBounces writes one msg=bounce line per recipient the message's DSN
// reports as failed or delayed: the line an operator greps for when a
// bounce complaint arrives.
func (s *session) logBounces(verdict string) {
	t := s.drv.Txn
	r := t.Results.DSNReport()
	if !r.IsReport() {
		return
	}
	bounced := r.Bounced()
	for i, rc := range bounced {
		if i == maxBounceLines {
			break
		}
		attrs := bounceAttrs(r, &rc)
		attrs = append(attrs, s.clientAttrs()...)
		if t.QueueID != "" {
			attrs = append(attrs, slog.String("queue_id", t.QueueID))
		}
		if ids := t.Header("Message-ID"); len(ids) > 0 {
			attrs = append(attrs, slog.String("message_id", clipLog(trimID(ids[0]), maxLoggedID)))
		}
		if verdict != "" {
			attrs = append(attrs, slog.String("verdict", verdict))
		}
		if more := len(bounced) - maxBounceLines + r.MoreRecipients; i == min(len(bounced), maxBounceLines)-1 && more > 0 {
			attrs = append(attrs, slog.Int("more_recipients", more))
		}
		s.logger.LogAttrs(context.Background(), slog.LevelInfo, "bounce", attrs...)
	}
}

// bounceAttrs are the fields of one msg=bounce line; empty ones are left
// out.
func bounceAttrs(r *dsninfo.Report, rc *dsninfo.Recipient) []slog.Attr {
	attrs := make([]slog.Attr, 0, 24)
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, clipLog(v, maxBounceValue)))
		}
	}
	add("kind", string(r.Kind))
	add("recipient", rc.Address())
	add("original_recipient", rc.OriginalRecipient.Value)
	add("action", string(rc.Action))
	add("status", rc.Status.String())
	add("status_text", rc.Status.Meaning())
	add("remote_mta", rc.RemoteMTA.Value)
	add("remote_ip", rc.RemoteIP)
	add("diagnostic", rc.DiagnosticCode.Value)
	add("last_attempt", rc.LastAttemptDate)
	add("will_retry_until", rc.WillRetryUntil)
	add("remote_greeting", rc.RemoteSMTPGreeting)
	add("remote_helo_response", rc.RemoteHeloResponse)
	add("exim_diagnostic", rc.ReportingDiagnostic)
	add("reporting_mta", r.ReportingMTA.Value)
	add("arrival_date", r.ArrivalDate)
	add("original_envid", r.OriginalEnvelopeID)
	add("original_message_id", r.Original.MessageID)
	add("original_from", r.Original.From)
	add("original_to", r.Original.To)
	add("original_subject", r.Original.Subject)
	add("original_date", r.Original.Date)
	return attrs
}

func trimID(id string) string {
	b := []byte(id)
	out := b[:0]
	for _, c := range b {
		if c != '<' && c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}
