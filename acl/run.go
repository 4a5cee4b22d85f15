package acl

import (
	"context"
	"fmt"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/internal/deadline"
)

// Result is the outcome of running the ACL of a stage.
type Result struct {
	Verb       Verb   // Accept, Deny, Defer, Discard or Drop
	Message    string // the expanded "message" (SMTP text) for the verdict, if any
	LogMessage string // the expanded "log_message" of the deciding statement
	ACL        string // the ACL that decided ("" when none is configured)
	Pos        config.Pos
	Err        error // why the run deferred, when it did because of an error
}

// runner evaluates one ACL run; ctx is the run's, for its duration.
type runner struct {
	ctx context.Context
	p   *Program
	t   *Txn
}

func (r *runner) eval(e *expand.Expr) (string, error) { return e.EvalLimits(r.ctx, r.t, r.p.limits) }

func (r *runner) log(kind string, pos config.Pos, text string) {
	if r.t.Logs == nil {
		r.t.Logs = make([]LogLine, 0, 2) // a message logs a line or two
	}
	r.t.Logs = append(r.t.Logs, LogLine{Stage: r.t.Stage, ACL: "", Pos: pos, Kind: kind, Text: text})
}

// Run runs the hooks of the stage and then the ACL configured for it,
// within acl_timeout. With no ACL configured the verdict is accept. A panic
// inside a condition is recovered and answered with defer, never accept.
func (p *Program) Run(ctx context.Context, stage Stage, t *Txn) Result {
	t.Stage = stage
	t.prog = p
	a := p.stage[stage]
	if !p.Runs(stage) {
		return Result{Verb: Accept}
	}
	if p.timeout > 0 {
		// None when the caller's deadline already comes first. The
		// deadline is read from the clock at the statement and call
		// boundaries: a timer is made only if a lookup waits on it.
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > p.timeout {
			dl := deadline.New(ctx, p.timeout)
			defer dl.Cancel()
			ctx = dl
		}
	}
	p.runHooks(ctx, stage, t)
	if a == nil {
		return Result{Verb: Accept}
	}
	return p.run(ctx, a, t)
}

// Runs reports whether Run does anything at a stage: hooks or an ACL to
// run. A stage where it does not leaves the transaction as it was.
func (p *Program) Runs(stage Stage) bool { return p.stage[stage] != nil || len(p.hooks[stage]) > 0 }

// Timeout is acl_timeout: the longest one run of Run may take (0: none).
func (p *Program) Timeout() time.Duration { return p.timeout }

// CanRefuse reports whether the verdict of a stage can be anything but
// accept: an ACL is configured for it and does not begin with a bare
// "accept" (one with no conditions and no modifiers). An ACL without
// statements refuses (Exim's implicit deny). Hooks never change a verdict.
// The milter lets the MTA go on without waiting for a reply at the stages
// that cannot refuse.
func (p *Program) CanRefuse(stage Stage) bool {
	a := p.stage[stage]
	if a == nil {
		return false
	}
	return len(a.stmts) == 0 || a.stmts[0].verb != Accept || len(a.stmts[0].items) > 0
}

func (p *Program) runHooks(ctx context.Context, stage Stage, t *Txn) {
	if len(p.hooks[stage]) == 0 {
		return
	}
	for _, h := range p.hooks[stage] {
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("internal error: %v", v)
				}
			}()
			return h.Run(ctx, t)
		}()
		if err != nil {
			t.Logs = append(t.Logs, LogLine{Stage: stage, ACL: "(" + h.Name + ")", Kind: "error", Text: err.Error()})
		}
	}
}

// RunACL runs the named ACL (for the test-acl command and the acl
// condition).
func (p *Program) RunACL(ctx context.Context, name string, t *Txn) Result {
	t.prog = p
	a := p.acls[name]
	if a == nil {
		return Result{Verb: Defer, ACL: name, Err: fmt.Errorf("no ACL named %q", name)}
	}
	return p.run(ctx, a, t)
}

func (p *Program) run(ctx context.Context, a *aclProg, t *Txn) (res Result) {
	if t.depth > 0 && ctx.Err() != nil { // an "acl =" call
		return Result{Verb: Defer, ACL: a.name, Pos: a.pos, Err: deadlineError(ctx, a, a.pos)}
	}
	if t.depth >= MaxCallDepth {
		return Result{Verb: Defer, ACL: a.name, Pos: a.pos, Err: fmt.Errorf("ACL calls nested deeper than %d", MaxCallDepth)}
	}
	t.depth++
	nHeaders, nRemove := len(t.AddHeaders), len(t.RemoveHeaders)
	r := runner{ctx: ctx, p: p, t: t}
	pos := a.pos
	defer func() {
		t.depth--
		if v := recover(); v != nil {
			res = Result{Verb: Defer, ACL: a.name, Pos: pos, Err: fmt.Errorf("internal error: %v", v)}
		}
		if res.Verb == Deny || res.Verb == Defer || res.Verb == Drop {
			// headers added by a run that rejects are discarded, as in Exim
			t.AddHeaders, t.RemoveHeaders = t.AddHeaders[:nHeaders], t.RemoveHeaders[:nRemove]
		}
		for i := range t.Logs {
			if t.Logs[i].ACL == "" {
				t.Logs[i].ACL = a.name
			}
		}
	}()
	for i := range a.stmts {
		st := &a.stmts[i]
		pos = st.pos
		// The deadline bounds the work of the statements themselves
		// (nested "acl =" calls fan out), not only what waits for it: it
		// is read between statements and at each "acl =" call, which is
		// one atomic load. (A run that starts with its context already
		// done still runs its first statement, whose lookups fail at
		// once.)
		if i > 0 && ctx.Err() != nil {
			return Result{Verb: Defer, ACL: a.name, Pos: pos, Err: deadlineError(ctx, a, pos)}
		}
		var msg, logMsg *expand.Expr
		ok, err := true, error(nil)
		for j := range st.items {
			it := &st.items[j]
			pos = it.pos
			switch it.kind {
			case kMessage:
				msg = it.expr
			case kLogMessage:
				logMsg = it.expr
			case kAction:
				err = it.action(r)
			case kCond:
				var v bool
				v, err = it.cond(ctx, t)
				if err == nil && v == it.neg {
					ok = false
				}
			}
			if err != nil {
				err = &itemError{it.where, err}
				break
			}
			if !ok {
				break
			}
		}
		pos = st.pos
		if err != nil {
			if st.verb == Warn && ctx.Err() == nil {
				r.log("error", pos, err.Error())
				continue
			}
			return r.verdict(a, st, Defer, msg, logMsg, err)
		}
		switch st.verb {
		case Warn:
			if ok && logMsg != nil {
				if s, e := r.eval(logMsg); e == nil {
					r.log("log_message", st.pos, s)
				} else {
					r.log("error", st.pos, e.Error())
				}
			}
		case Require:
			if !ok {
				return r.verdict(a, st, Deny, msg, logMsg, nil)
			}
		default:
			if ok {
				return r.verdict(a, st, st.verb, msg, logMsg, nil)
			}
		}
	}
	return Result{Verb: Deny, ACL: a.name, Pos: a.pos, Message: ""}
}

// itemError is the failure of a condition or modifier, prefixed with
// where it is written: what fmt.Errorf("%s: %w") would make, without
// formatting it until it is read.
type itemError struct {
	where string
	err   error
}

func (e *itemError) Error() string { return e.where + ": " + e.err.Error() }

func (e *itemError) Unwrap() error { return e.err }

// deadlineError says where a run was when its deadline (acl_timeout or the
// stage's timeout) passed; it wraps the context's error.
func deadlineError(ctx context.Context, a *aclProg, pos config.Pos) error {
	return fmt.Errorf("ACL %q ran past its deadline (acl_timeout or the stage timeout) at %s: %w", a.name, pos, ctx.Err())
}

func (r *runner) verdict(a *aclProg, st *statement, v Verb, msg, logMsg *expand.Expr, cause error) Result {
	res := Result{Verb: v, ACL: a.name, Pos: st.pos, Err: cause}
	if msg != nil {
		s, err := r.eval(msg)
		if err != nil && res.Err == nil {
			res.Err = err
		}
		res.Message = s
	}
	if logMsg != nil {
		if s, err := r.eval(logMsg); err == nil {
			res.LogMessage = s
		}
	}
	return res
}
