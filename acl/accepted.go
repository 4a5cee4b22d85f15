package acl

import (
	"context"
	"fmt"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/expand"
)

// AcceptHook is work a feature does once the DATA ACL has accepted a
// message, before the header edits are computed: DKIM signing, which must
// know what the ACL decided (control = dkim_disable_sign, remove_header)
// and must add its field in the same write as the other edits. A hook may
// add header fields (Txn.AddHeaders). Its error defers the message (a
// feature that wants to let the message go unsigned logs on the
// transaction and returns nil).
type AcceptHook struct {
	Name string
	Run  func(ctx context.Context, t *Txn) error
}

// AddAcceptHook registers work after an accepting DATA ACL; the hooks run
// in registration order.
func (r *Registry) AddAcceptHook(h AcceptHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acceptHooks = append(r.acceptHooks, h)
}

func (r *Registry) acceptHookList() []AcceptHook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]AcceptHook(nil), r.acceptHooks...)
}

// Accepted runs the accept hooks for a message the DATA ACL accepted,
// under ctx (the stage's deadline). The first error — a panic becomes
// one — stops them and is returned, named after its hook: the caller
// defers the message.
func (p *Program) Accepted(ctx context.Context, t *Txn) error {
	if len(p.acceptHooks) == 0 {
		return nil
	}
	t.prog = p
	for _, h := range p.acceptHooks {
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("internal error: %v", v)
				}
			}()
			return h.Run(ctx, t)
		}()
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}

// CompileOption compiles the main option name of cfg as an expansion
// evaluated per message at stages (dkim_domain, say), in the scope of
// the registry's variables available there, the acl_c and acl_m
// variables some "set" modifier of cfg sets, and header variables when
// stages is OnlyData. extra, when not nil, resolves a name first (a
// feature's own variables, such as $dkim_selector while dkim_private_key
// is expanded): ok false passes the name on. The getters take the *Txn
// of the running message. The error is a config.ErrorList pointing into
// the option's value.
func (r *Registry) CompileOption(cfg *config.Config, name string, stages StageSet, extra func(name string) (get expand.Getter, ok bool, err error)) (*expand.Expr, error) {
	where := "(option " + name + ")"
	rep := cfg.Reporter
	if rep == nil {
		rep = &config.Reporter{}
	}
	start := len(rep.List)
	// The errors are returned, not left in the Reporter: the caller
	// reports them (a Configurer's errors join the load's).
	defer func() { rep.List = rep.List[:start] }()
	c := &compiler{reg: r, cfg: cfg, rep: rep,
		prog: &Program{varsC: map[string]int{}, varsM: map[string]int{}}, via: map[string]string{where: "per message"}}
	c.collectVars()
	a := &aclProg{name: where, stages: stages}
	c.scopeFor = func(a *aclProg) expand.Scope { return &optionScope{scope: scope{c: c, acl: a}, extra: extra} }
	e, ok := c.expr(a, cfg.Get(name).Value)
	if !ok {
		return nil, append(config.ErrorList(nil), rep.List[start:]...)
	}
	return e, nil
}

type optionScope struct {
	scope
	extra func(name string) (expand.Getter, bool, error)
}

func (s *optionScope) Var(name string) (expand.Getter, error) {
	if s.extra != nil {
		if get, ok, err := s.extra(name); ok || err != nil {
			return get, err
		}
	}
	return s.scope.Var(name)
}
