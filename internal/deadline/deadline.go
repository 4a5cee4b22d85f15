// Package deadline gives a context a deadline without a timer: the
// deadline is read from the clock when Err is asked, and a timer (a
// context.WithDeadline underneath) is made only when something waits on
// Done. An ACL run asks Err between its statements and calls, and most
// runs never wait on Done: the timer, its allocations and its locks
// were most of what a per-run context.WithTimeout cost.
package deadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// WithTimeout is context.WithTimeout(parent, d) with a lazy timer. The
// returned context behaves as the standard one: Deadline returns the
// earlier of the two deadlines; Err is DeadlineExceeded once the deadline
// has passed, the parent's error once the parent is done, Canceled once
// cancel is called; Done is closed at the same points. The caller must
// call cancel when done, as with the standard function.
func WithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c := New(parent, d)
	return c, c.Cancel
}

// New is WithTimeout returning the context itself: its Cancel method is
// the cancel function, which costs no closure.
func New(parent context.Context, d time.Duration) *Context {
	dl := time.Now().Add(d)
	if cur, ok := parent.Deadline(); ok && cur.Before(dl) {
		dl = cur // the parent's deadline comes first
	}
	return &Context{parent: parent, deadline: dl}
}

// Context is the context of WithTimeout and New.
type Context struct {
	parent   context.Context
	deadline time.Time

	inner atomic.Pointer[context.Context] // the timed context, once Done was asked
	ended atomic.Int32                    // set by cancel: the error it fixed

	mu          sync.Mutex
	cancelInner context.CancelFunc
}

func (c *Context) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *Context) Done() <-chan struct{} { return c.timed().Done() }

func (c *Context) Err() error {
	if in := c.inner.Load(); in != nil {
		return (*in).Err()
	}
	switch c.ended.Load() {
	case endCanceled:
		return context.Canceled
	case endDeadline:
		return context.DeadlineExceeded
	case endParent:
		return c.parent.Err() // once set, a context's error stays
	}
	return c.now()
}

// The errors cancel fixes.
const (
	endCanceled = 1 + iota
	endDeadline
	endParent
)

// now is the error the context has at this instant, without cancel.
func (c *Context) now() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	// time.Until reads only the monotonic clock (the deadline has a
	// monotonic reading): half the cost of time.Now, on every Err.
	if time.Until(c.deadline) <= 0 {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *Context) Value(key any) any {
	if in := c.inner.Load(); in != nil {
		return (*in).Value(key) // context.Cause and child contexts find its cancelCtx
	}
	return c.parent.Value(key)
}

// timed returns the context with a real timer, making it on first use.
func (c *Context) timed() context.Context {
	if in := c.inner.Load(); in != nil {
		return *in
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return *in
	}
	in, cancel := context.WithDeadline(c.parent, c.deadline)
	if c.ended.Load() == endCanceled {
		cancel()
	}
	c.cancelInner = cancel
	c.inner.Store(&in)
	return in
}

// Cancel cancels the context, as the CancelFunc of WithTimeout.
func (c *Context) Cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended.Load() != 0 {
		return
	}
	switch err := c.now(); {
	case err == nil:
		c.ended.Store(endCanceled)
	case err == context.DeadlineExceeded && c.parent.Err() == nil:
		c.ended.Store(endDeadline)
	default:
		c.ended.Store(endParent)
	}
	if c.cancelInner != nil {
		c.cancelInner()
	}
}

func (c *Context) String() string { return "deadline.WithTimeout" }
