package stage

import (
	"fmt"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
)

// Header records one header field: its name, and its value as the exact
// bytes after the colon (the leading space included), with line breaks as
// CRLF. The header fields of one message are capped at MaxHeaderBytes,
// whatever the order of the calls; past it the message fails.
func (d *Driver) Header(name, value string) {
	defer d.recoverMessage("header")
	if hasBareLF(value) {
		value = lfToCRLF(value)
	}
	if d.Msg.headerBytes == 0 {
		// The first field of this message: the list holds no field of
		// another, whatever the packet order (header fields, an abort,
		// fields again without MAIL), so the cap is per message.
		clear(d.Txn.Headers)
		d.Txn.Headers = d.Txn.Headers[:0]
		if d.Txn.Headers == nil {
			d.Txn.Headers = make([]acl.Header, 0, 16) // a usual header at once
		}
	}
	n := len(name) + 1 + len(value) + 2
	d.Msg.Size += int64(n)
	d.Msg.headerBytes += n
	if d.Msg.headerBytes > MaxHeaderBytes {
		if d.Msg.Failure == nil {
			d.Msg.Failure = fmt.Errorf("header fields exceed %d bytes", MaxHeaderBytes)
		}
		return
	}
	d.Txn.Headers = append(d.Txn.Headers, acl.Header{Name: name, Value: value})
}

// hasBareLF reports whether s has an LF without a CR before it: folded
// values already in CRLF form are kept as they are, without a copy.
func hasBareLF(s string) bool {
	for i := strings.IndexByte(s, '\n'); i >= 0; {
		if i == 0 || s[i-1] != '\r' {
			return true
		}
		j := strings.IndexByte(s[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
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

// EndOfHeader starts the features' body writers: the header is complete.
// Body starts them too when the MTA sent no end of header.
func (d *Driver) EndOfHeader() {
	defer d.recoverMessage("end of headers")
	d.used = true // the body hooks start with the transaction
	if d.Msg.bodyStarted {
		return
	}
	d.Msg.bodyStarted = true
	d.Msg.Size += 2 // the empty line
	var hooks []acl.BodyHook
	if d.env.Program != nil {
		hooks = d.env.Program.BodyHooks()
	}
	for _, list := range [][]acl.BodyHook{hooks, d.env.BodyHooks} {
		for _, h := range list {
			if w := d.startWriter(h); w != nil {
				if d.Msg.writers == nil {
					d.Msg.writers = d.Msg.writerRoom[:0]
				}
				d.Msg.writers = append(d.Msg.writers, w)
			}
		}
	}
}

func (d *Driver) startWriter(h acl.BodyHook) (w acl.BodyWriter) {
	// The hook's name is joined to the text only after a panic: joined in
	// the deferred call, it would cost every message an allocation per
	// hook.
	defer func() {
		if v := recover(); v != nil {
			d.messagePanicked("body hook "+h.Name, v)
		}
	}()
	return h.Start(d.Txn)
}

// Body passes a chunk of the body to the writers and counts it; nothing
// of the body is kept.
func (d *Driver) Body(p []byte) {
	defer d.recoverMessage("body")
	d.used = true
	if !d.Msg.bodyStarted {
		d.EndOfHeader()
	}
	d.Msg.Size += int64(len(p))
	for i, w := range d.Msg.writers {
		if w != nil && d.writeBody(w, p) != nil {
			d.Msg.writers[i] = nil
		}
	}
}

// writeBody gives a chunk to one writer. A writer that fails is aborted
// and noted in the message's log lines; one that panics fails the message
// (tempfail) and is dropped.
func (d *Driver) writeBody(w acl.BodyWriter, p []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			d.panicked("body writer", v)
			if d.Msg.Failure == nil {
				d.Msg.Failure = fmt.Errorf("internal error in body writer: %v", v)
			}
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	if _, err := w.Write(p); err != nil {
		d.note("(body)", "body writer failed; dropped for this message: "+err.Error())
		w.Abort()
		return err
	}
	return nil
}

// endBody tells the body writers the message is complete.
func (d *Driver) endBody() {
	defer d.recoverMessage("end of body")
	writers := d.Msg.writers
	d.Msg.writers = nil
	for _, w := range writers {
		if w == nil {
			continue
		}
		if err := w.End(); err != nil {
			d.note("(body)", "body writer failed at end of message: "+err.Error())
		}
	}
}

// abortBody drops the body writers of an unfinished message.
func (d *Driver) abortBody() {
	writers := d.Msg.writers
	d.Msg.writers = nil
	for _, w := range writers {
		if w != nil {
			func() {
				defer d.recoverMessage("body abort")
				w.Abort()
			}()
		}
	}
}

// note records a problem of the message among its log lines.
func (d *Driver) note(where, text string) {
	d.Txn.Logs = append(d.Txn.Logs, acl.LogLine{Stage: d.Txn.Stage, ACL: where, Kind: "error", Text: text})
}
