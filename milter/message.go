package milter

import (
	"fmt"
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/mailsidecar/sidecar/acl"
)

// recoverMessage turns a panic in an event that gets no reply into a
// failure of the message: tempfail at its end. Deferred by each handler.
func (s *session) recoverMessage(where string) {
	if v := recover(); v != nil {
		s.internalPanic(where, v)
		if s.msg.failure == nil {
			s.msg.failure = fmt.Errorf("internal error in %s: %v", where, v)
		}
	}
}

// header records one header field. Its value keeps its exact bytes after
// the colon (the leading space included, negotiated with
// SMFIP_HDR_LEADSPC); line breaks, which the MTAs send as LF, are written
// as CRLF, as on the wire.
func (s *session) header(name, value string) {
	defer s.recoverMessage("header")
	if !s.neg.has(gomilter.OptHeaderLeadingSpace) && value != "" {
		// The MTA dropped the space after the colon; put the usual one back.
		value = " " + value
	}
	if strings.IndexByte(value, '\n') >= 0 {
		value = lfToCRLF(value)
	}
	if s.msg.headerBytes == 0 {
		// The first field of this message: the list holds no field of
		// another, whatever the packet order (header fields, then ABORT,
		// then fields again without MAIL), so the cap below is per message.
		clear(s.txn.Headers)
		s.txn.Headers = s.txn.Headers[:0]
	}
	n := len(name) + 1 + len(value) + 2
	s.msg.size += int64(n)
	s.msg.headerBytes += n
	if s.msg.headerBytes > maxHeaderBytes {
		if s.msg.failure == nil {
			s.msg.failure = fmt.Errorf("header fields exceed %d bytes", maxHeaderBytes)
		}
		return
	}
	s.txn.Headers = append(s.txn.Headers, acl.Header{Name: name, Value: value})
}

// lfToCRLF turns bare LF into CRLF.
func lfToCRLF(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// startBody starts the body writers, at the end of the headers.
func (s *session) startBody() {
	defer s.recoverMessage("end of headers")
	if s.msg.bodyStarted {
		return
	}
	s.msg.bodyStarted = true
	s.msg.size += 2 // the empty line
	for _, hook := range s.env.BodyHooks {
		if w := hook(s.txn); w != nil {
			s.msg.hooks = append(s.msg.hooks, w)
		}
	}
}

// bodyChunk passes a body chunk to the writers and counts it; nothing of
// the body is kept.
func (s *session) bodyChunk(p []byte) {
	defer s.recoverMessage("body")
	if !s.msg.bodyStarted {
		s.startBody()
	}
	s.msg.size += int64(len(p))
	for i, w := range s.msg.hooks {
		if w == nil {
			continue
		}
		if err := s.writeBody(w, p); err != nil {
			s.msg.hooks[i] = nil
		}
	}
}

// writeBody gives a chunk to one writer. A writer that fails is aborted; one
// that panics fails the message (tempfail) and is dropped.
func (s *session) writeBody(w BodyWriter, p []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.internalPanic("body writer", v)
			if s.msg.failure == nil {
				s.msg.failure = fmt.Errorf("internal error in body writer: %v", v)
			}
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	if _, err := w.Write(p); err != nil {
		s.logger.Warn("body writer failed; dropping it for this message", "error", err.Error(), "queue_id", s.txn.QueueID)
		w.Abort()
		return err
	}
	return nil
}

// endBody tells the body writers the message is complete.
func (s *session) endBody() {
	defer s.recoverMessage("end of body")
	hooks := s.msg.hooks
	s.msg.hooks = nil
	for _, w := range hooks {
		if w == nil {
			continue
		}
		if err := w.End(); err != nil {
			s.logger.Warn("body writer failed at end of message", "error", err.Error(), "queue_id", s.txn.QueueID)
		}
	}
}

// abortBody drops the body writers of an unfinished message.
func (s *session) abortBody() {
	hooks := s.msg.hooks
	s.msg.hooks = nil
	for _, w := range hooks {
		if w != nil {
			func() {
				defer s.recoverMessage("body abort")
				w.Abort()
			}()
		}
	}
}
