package acl

import (
	"errors"
	"fmt"
	"sort"
)

// BodyWriter receives a message's body as it streams past, in chunks of at
// most 64 KiB with CRLF line ends; a chunk is valid only during Write. End
// is called at the end of the message, before the DATA ACL runs (so
// conditions can use what it found); Abort instead when the message is
// aborted or the connection ends. A Write error drops the writer for this
// message.
type BodyWriter interface {
	Write(p []byte) (int, error)
	End() error
	Abort()
}

// BodyHook starts a feature's consumer of one message's body (DKIM
// verification, ARC validation and sealing). Start is called at the end
// of the header, when Txn.Headers is complete, and returns nil when it has
// nothing to do for this message.
type BodyHook struct {
	Name  string
	Start func(t *Txn) BodyWriter
}

// Ending is what finally happened to a message: the verdict it got and
// where, whether it was quarantined, or that it never reached its end.
type Ending struct {
	Verb        Verb  // Accept, Deny, Defer, Discard or Drop
	Stage       Stage // where the verdict was given
	Quarantined bool  // accepted into the MTA's hold queue
	Aborted     bool  // the message ended before its end of data (abort, next MAIL, connection lost)
}

// Finisher is work a feature does once a message has ended, from what the
// message got: the DMARC history record, for instance, says what was done
// with the message.
type Finisher struct {
	Name string
	Run  func(t *Txn, e Ending) error
}

// AddBodyHook registers a body consumer; they start in registration order.
func (r *Registry) AddBodyHook(h BodyHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodyHooks = append(r.bodyHooks, h)
}

// AddFinisher registers end-of-message work.
func (r *Registry) AddFinisher(f Finisher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishers = append(r.finishers, f)
}

// BodyHooks returns the body consumers of the Program's registry.
func (p *Program) BodyHooks() []BodyHook { return p.bodyHooks }

// Finish runs the finishers for a message that ended. A finisher's error
// or panic is recorded in t.Logs under its name; none stops the others.
func (p *Program) Finish(t *Txn, e Ending) {
	t.prog = p
	for _, f := range p.finishers {
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("internal error: %v", v)
				}
			}()
			return f.Run(t, e)
		}()
		if err != nil {
			t.Logs = append(t.Logs, LogLine{Stage: e.Stage, ACL: "(" + f.Name + ")", Kind: "error", Text: err.Error()})
		}
	}
}

func (r *Registry) lifecycle() ([]BodyHook, []Finisher) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]BodyHook(nil), r.bodyHooks...), append([]Finisher(nil), r.finishers...)
}

// Attacher is a feature value (what a Configurer produced) that holds
// something outside the process for its Program, such as a file it
// appends to. The daemon attaches every Program it runs (at start and on
// each reload) and detaches it when it is replaced or the daemon stops;
// a Program that is never attached (check-config, sidecar check) writes
// nothing.
type Attacher interface {
	Attach() error
	Detach() error
}

// Attach attaches the Program's features (see Attacher).
func (p *Program) Attach() error {
	var errs []error
	for _, name := range p.featureNames() {
		if a, ok := p.features[name].(Attacher); ok {
			if err := a.Attach(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Detach detaches the Program's features.
func (p *Program) Detach() error {
	var errs []error
	for _, name := range p.featureNames() {
		if a, ok := p.features[name].(Attacher); ok {
			if err := a.Detach(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (p *Program) featureNames() []string {
	names := make([]string, 0, len(p.features))
	for n := range p.features {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
