package milter

import (
	"context"
	"log/slog"
	"net"
	"net/textproto"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// logTxn writes the one line of a transaction: who sent what to whom, the
// verdict, and what the ACLs logged. override names the outcome when it is
// not the recorded verdict ("aborted", "discard").
func (s *session) logTxn(override string) {
	if !s.msg.open {
		return
	}
	s.msg.open = false
	t := s.txn
	verdict, level := string(acl.Accept), slog.LevelInfo
	var d *decision
	if s.msg.verdict != nil {
		d = s.msg.verdict
		verdict = string(d.res.Verb)
	}
	if d == nil && len(t.Recipients) == 0 && len(s.msg.rejected) > 0 {
		// Every recipient was refused: that is the verdict, not the abort
		// that followed.
		last := s.msg.rejected[len(s.msg.rejected)-1]
		d = &decision{acl.Rcpt, last.res}
		verdict = string(d.res.Verb)
	} else if override != "" && (d == nil || d.res.Verb == acl.Accept) {
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
	if d != nil && d.res.Verb != acl.Accept {
		attrs = append(attrs, decisionAttrs(d)...)
		if d.res.Err != nil {
			level = slog.LevelWarn
		}
	}
	if len(s.msg.rejected) > 0 {
		rej := make([]string, 0, len(s.msg.rejected))
		for _, r := range s.msg.rejected {
			line := r.rcpt + " " + string(r.res.Verb)
			if r.res.ACL != "" {
				line += " (" + r.res.ACL + " " + r.res.Pos.String() + ")"
			}
			rej = append(rej, line)
		}
		attrs = append(attrs, slog.Any("rejected", rej))
	}
	if len(s.msg.discarded) > 0 {
		attrs = append(attrs, slog.Any("discarded", s.msg.discarded))
	}
	if t.QueueID != "" {
		attrs = append(attrs, slog.String("queue_id", t.QueueID))
	}
	if s.msg.size > 0 {
		attrs = append(attrs, slog.Int64("size", s.msg.size))
	}
	if s.msg.quarantine != "" {
		attrs = append(attrs, slog.String("quarantine", s.msg.quarantine))
	}
	if len(s.msg.edits) > 0 {
		attrs = append(attrs, slog.Any("headers", s.msg.edits))
	}
	if logs := aclLogs(t.Logs); len(logs) > 0 {
		attrs = append(attrs, slog.Any("acl_logs", logs))
	}
	s.loggedLogs = len(t.Logs)
	if !s.msg.start.IsZero() {
		attrs = append(attrs, slog.Duration("duration", time.Since(s.msg.start).Round(time.Microsecond)))
	}
	s.logger.LogAttrs(context.Background(), level, "transaction", attrs...)
}

// logSession writes a line for a connection whose connect or HELO ACL did
// not accept, or whose ACLs logged something outside a transaction.
func (s *session) logSession() {
	attrs := s.clientAttrs()
	level := slog.LevelInfo
	verdict := string(acl.Accept)
	if d := s.connVerdict; d != nil {
		verdict = string(d.res.Verb)
		attrs = append(attrs, slog.String("verdict", verdict))
		attrs = append(attrs, decisionAttrs(d)...)
		if d.res.Err != nil {
			level = slog.LevelWarn
		}
	}
	if logs := aclLogs(s.txn.Logs[min(s.loggedLogs, len(s.txn.Logs)):]); len(logs) > 0 {
		attrs = append(attrs, slog.Any("acl_logs", logs))
	}
	s.loggedLogs = len(s.txn.Logs)
	s.logger.LogAttrs(context.Background(), level, "connection", attrs...)
}

func (s *session) clientAttrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("client", s.clientString()))
	if s.conn.ClientName != "" {
		attrs = append(attrs, slog.String("client_name", s.conn.ClientName))
	}
	if s.conn.Helo != "" {
		attrs = append(attrs, slog.String("helo", s.conn.Helo))
	}
	if s.conn.AuthID != "" {
		attrs = append(attrs, slog.String("auth", s.conn.AuthID))
	}
	return attrs
}

func decisionAttrs(d *decision) []slog.Attr {
	attrs := []slog.Attr{slog.String("stage", d.stage.String())}
	if d.res.ACL != "" {
		attrs = append(attrs, slog.String("acl", d.res.ACL), slog.String("pos", d.res.Pos.String()))
	}
	if d.res.Message != "" {
		attrs = append(attrs, slog.String("message", d.res.Message))
	}
	if d.res.LogMessage != "" {
		attrs = append(attrs, slog.String("log_message", d.res.LogMessage))
	}
	if d.res.Err != nil {
		attrs = append(attrs, slog.String("error", d.res.Err.Error()))
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
