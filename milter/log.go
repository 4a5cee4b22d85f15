package milter

import (
	"context"
	"log/slog"
	"net"
	"net/textproto"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
)

// logTxn writes the one line of a transaction: who sent what to whom, the
// verdict, and what the ACLs logged. override names the outcome when it is
// not the recorded verdict ("aborted", "discard").
func (s *session) logTxn(override string) {
	if !s.txnOpen {
		return
	}
	s.txnOpen = false
	t, msg := s.drv.Txn, &s.drv.Msg
	verdict, level := string(acl.Accept), slog.LevelInfo
	var d *stage.Decision
	if msg.Verdict != nil {
		d = msg.Verdict
		verdict = string(d.Result.Verb)
	}
	if d == nil && len(t.Recipients) == 0 && len(msg.Rejected) > 0 {
		// Every recipient was refused: that is the verdict, not the abort
		// that followed.
		last := msg.Rejected[len(msg.Rejected)-1]
		d = &stage.Decision{Stage: acl.Rcpt, Result: last.Result}
		verdict = string(d.Result.Verb)
	} else if override != "" && (d == nil || d.Result.Verb == acl.Accept) {
		verdict = override
	}
	attrs := s.clientAttrs()
	sender := t.Sender
	if sender == "" {
		sender = "<>"
	}
	attrs = append(attrs,
		slog.String("sender", sender),
		slog.Any("recipients", t.Recipients),
		slog.String("verdict", verdict),
	)
	if s.logger.Enabled(context.Background(), slog.LevelInfo) {
		attrs = append(attrs, resultAttrs(t)...)
	}
	attrs = append(attrs, dsnAttrs(t)...)
	if d != nil && d.Result.Verb != acl.Accept {
		attrs = append(attrs, decisionAttrs(d)...)
		if d.Result.Err != nil {
			level = slog.LevelWarn
		}
	}
	if len(msg.Rejected) > 0 {
		rej := make([]string, 0, len(msg.Rejected))
		for _, r := range msg.Rejected {
			line := r.Rcpt + " " + string(r.Result.Verb)
			if r.Result.ACL != "" {
				line += " (" + r.Result.ACL + " " + r.Result.Pos.String() + ")"
			}
			rej = append(rej, line)
		}
		attrs = append(attrs, slog.Any("rejected", rej))
	}
	if len(msg.Discarded) > 0 {
		attrs = append(attrs, slog.Any("discarded", msg.Discarded))
	}
	if t.QueueID != "" {
		attrs = append(attrs, slog.String("queue_id", t.QueueID))
	}
	if msg.Size > 0 {
		attrs = append(attrs, slog.Int64("size", msg.Size))
	}
	if s.quarantine != "" {
		attrs = append(attrs, slog.String("quarantine", s.quarantine))
	}
	if len(s.edits) > 0 {
		attrs = append(attrs, slog.Any("headers", s.edits))
	}
	if logs := aclLogs(t.Logs); len(logs) > 0 {
		attrs = append(attrs, slog.Any("acl_logs", logs))
	}
	s.drv.MarkLogged()
	if !msg.Start.IsZero() {
		attrs = append(attrs, slog.Duration("duration", time.Since(msg.Start).Round(time.Microsecond)))
	}
	s.logger.LogAttrs(context.Background(), level, "transaction", attrs...)
}

// logSession writes a line for a connection whose connect or HELO ACL did
// not accept, or whose ACLs logged something outside a transaction.
func (s *session) logSession() {
	attrs := s.clientAttrs()
	level := slog.LevelInfo
	verdict := string(acl.Accept)
	if d := s.drv.ConnVerdict; d != nil {
		verdict = string(d.Result.Verb)
		attrs = append(attrs, slog.String("verdict", verdict))
		attrs = append(attrs, decisionAttrs(d)...)
		if d.Result.Err != nil {
			level = slog.LevelWarn
		}
	}
	if logs := aclLogs(s.drv.Unlogged()); len(logs) > 0 {
		attrs = append(attrs, slog.Any("acl_logs", logs))
	}
	s.drv.MarkLogged()
	s.logger.LogAttrs(context.Background(), level, "connection", attrs...)
}

func (s *session) clientAttrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("client", s.clientString()))
	c := s.drv.Conn
	if c.ClientName != "" {
		attrs = append(attrs, slog.String("client_name", c.ClientName))
	}
	if c.Helo != "" {
		attrs = append(attrs, slog.String("helo", c.Helo))
	}
	if c.AuthID != "" {
		attrs = append(attrs, slog.String("auth", c.AuthID))
	}
	return attrs
}

func decisionAttrs(d *stage.Decision) []slog.Attr {
	attrs := []slog.Attr{slog.String("stage", d.Stage.String())}
	if d.Result.ACL != "" {
		attrs = append(attrs, slog.String("acl", d.Result.ACL), slog.String("pos", d.Result.Pos.String()))
	}
	if d.Result.Message != "" {
		attrs = append(attrs, slog.String("message", d.Result.Message))
	}
	if d.Result.LogMessage != "" {
		attrs = append(attrs, slog.String("log_message", d.Result.LogMessage))
	}
	if d.Result.Err != nil {
		attrs = append(attrs, slog.String("error", d.Result.Err.Error()))
	}
	return attrs
}

// aclLogs formats the log lines of the ACLs: "rcpt check_rcpt test.conf:3:2 log_message: text".
func aclLogs(lines []acl.LogLine) []string {
	if len(lines) == 0 {
		return nil
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.Stage.String()+" "+l.ACL+" "+l.Pos.String()+" "+l.Kind+": "+l.Text)
	}
	return out
}

// orphan is a handler without a session; it refuses everything. go-milter
// only asks for one when replacing a handler, which our replies prevent.
type orphan struct{}

func (orphan) Connect(string, string, uint16, net.IP, *gomilter.Modifier) (gomilter.Response, error) {
	return replyTempfail, nil
}
func (orphan) Helo(string, *gomilter.Modifier) (gomilter.Response, error) { return replyTempfail, nil }
func (orphan) MailFrom(string, *gomilter.Modifier) (gomilter.Response, error) {
	return replyTempfail, nil
}
func (orphan) RcptTo(string, *gomilter.Modifier) (gomilter.Response, error) {
	return replyTempfail, nil
}
func (orphan) Header(string, string, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}
func (orphan) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}
func (orphan) BodyChunk([]byte, *gomilter.Modifier) (gomilter.Response, error) { return nil, nil }
func (orphan) Body(*gomilter.Modifier) (gomilter.Response, error)              { return replyTempfail, nil }
func (orphan) Abort(*gomilter.Modifier) error                                  { return nil }
