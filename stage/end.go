package stage

import (
	"context"
	"fmt"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/internal/deadline"
)

// End is the outcome of a message at its end of data.
type End struct {
	// Result is the verdict: the DATA ACL's, or defer for a message that
	// failed (Message.Failure) or a connection whose unanswered connect or
	// HELO failed.
	Result acl.Result
	// Discard: accepted by the DATA ACL, but every recipient was discarded
	// at RCPT, so the whole message is discarded.
	Discard bool
	// Edits are the changes to make to an accepted message; nil otherwise.
	Edits *Edits

	verdict Decision // the memory of Message.Verdict, allocated with the End
}

// EndOfMessage ends the body, runs the DATA ACL and decides what the MTA
// is to do with the message. The message's finishers run with what it
// got.
func (d *Driver) EndOfMessage(ctx context.Context, queueID string) *End {
	d.used = true
	if obs := d.env.Observer; obs != nil {
		start := time.Now()
		defer func() { obs.StageDone(acl.Data, time.Since(start)) }()
	}
	if !d.Msg.bodyStarted {
		d.EndOfHeader()
	}
	d.endBody()
	d.Txn.MessageSize = d.Msg.Size
	d.SetQueueID(queueID)
	end := &End{}
	switch {
	case d.Msg.Failure != nil:
		end.Result = acl.Result{Verb: acl.Defer, Err: d.Msg.Failure}
	case d.connFailure != nil:
		end.Result = acl.Result{Verb: acl.Defer, Err: d.connFailure}
	default:
		end.Result = d.run(ctx, acl.Data)
	}
	ending := acl.Ending{Verb: end.Result.Verb, Stage: acl.Data}
	if end.Result.Verb == acl.Accept {
		if len(d.Msg.Discarded) > 0 && len(d.Msg.Discarded) >= len(d.Txn.Recipients) {
			end.Discard = true
			ending.Verb = acl.Discard
		} else if err := d.accepted(ctx); err != nil {
			end.Result = acl.Result{Verb: acl.Defer, ACL: end.Result.ACL, Pos: end.Result.Pos, Err: err}
			ending.Verb = acl.Defer
		} else {
			end.Edits = d.edits()
			ending.Quarantined = end.Edits.Quarantine
		}
	}
	end.verdict = Decision{acl.Data, end.Result}
	d.Msg.Verdict = &end.verdict
	d.finish(ending)
	return end
}

// accepted runs the Program's accept hooks (DKIM signing) on a message
// the DATA ACL accepted, under the stage's deadline: they see the verdict
// and what the ACL added or removed, and what they add goes out with the
// other edits, in the same write. An error or a panic defers the message.
func (d *Driver) accepted(ctx context.Context) (err error) {
	prog := d.env.Program
	if prog == nil {
		return nil
	}
	if lim := d.env.StageTimeout; lim > 0 {
		dl := deadline.New(ctx, lim)
		defer dl.Cancel()
		ctx = dl
	}
	defer func() {
		if v := recover(); v != nil {
			d.panicked("accept hooks", v)
			err = fmt.Errorf("internal error: %v", v)
		}
	}()
	return prog.Accepted(ctx, d.Txn)
}

// Abort ends the transaction without a message (SMFIC_ABORT, RSET): the
// body writers are dropped, the message closed and its header fields
// forgotten with it.
func (d *Driver) Abort() {
	d.used = true // the message state is closed
	if d.Msg.Open {
		d.endOpen()
	}
	d.Txn.Close()
	d.Txn.Headers = nil
	d.Msg = Message{}
}

// Close ends the connection: an open message is aborted and closed.
func (d *Driver) Close() {
	d.used = true // the message state is closed
	if d.Msg.Open {
		d.endOpen()
	}
	d.Txn.Close()
}

// EndOpen ends a message that did not reach its end of data (the caller
// logs it before the next MAIL, an abort or the end of the connection).
func (d *Driver) EndOpen() {
	if d.Msg.Open {
		d.endOpen()
	}
}

func (d *Driver) endOpen() {
	d.abortBody()
	ending := acl.Ending{Verb: acl.Accept, Stage: d.Txn.Stage, Aborted: true}
	if v := d.Msg.Verdict; v != nil {
		ending.Verb, ending.Stage = v.Result.Verb, v.Stage
	} else if len(d.Txn.Recipients) == 0 && len(d.Msg.Rejected) > 0 {
		last := d.Msg.Rejected[len(d.Msg.Rejected)-1]
		ending.Verb, ending.Stage = last.Result.Verb, acl.Rcpt
	}
	d.finish(ending)
}

// finish runs the finishers of an ended message, once.
func (d *Driver) finish(e acl.Ending) {
	if !d.Msg.Open {
		return
	}
	d.used = true
	d.Msg.Open = false
	if p := d.env.Program; p != nil {
		p.Finish(d.Txn, e)
	}
	if obs := d.env.Observer; obs != nil {
		obs.MessageEnded(d.Txn, e)
	}
}
