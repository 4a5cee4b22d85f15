package acl

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

// List compiles the condition's value as a list of the given kind. A
// constant value is compiled now, so its mistakes are load-time errors; an
// expanded one is compiled each time it is evaluated.
func (cc *CondCompile) List(kind config.ListKind) (func(ctx context.Context, t *Txn) (*List, error), error) {
	if text, ok := cc.Value.Constant(); ok {
		l, err := cc.prog.lists.Compile(kind, config.NewValue(text, cc.Pos))
		if err != nil {
			return nil, err
		}
		al := &List{list: l}
		return func(context.Context, *Txn) (*List, error) { return al, nil }, nil
	}
	lists := cc.prog.lists
	expr := cc.Value
	pos := cc.Pos
	limits := cc.prog.prog.limits
	return func(ctx context.Context, t *Txn) (*List, error) {
		s, err := expr.EvalLimits(ctx, t, limits)
		if err != nil {
			return nil, err
		}
		// Named lists were compiled at load time; the compiler only
		// reads them here.
		l, err := lists.Compile(kind, config.NewValue(s, pos))
		if err != nil {
			return nil, err
		}
		return &List{list: l}, nil
	}, nil
}

// ListCondition builds a condition that matches subject(t) against a list
// of kind: the shape of domains, senders and their kind.
func ListCondition(kind config.ListKind, subject func(t *Txn) string) func(cc *CondCompile) (CondFunc, error) {
	return func(cc *CondCompile) (CondFunc, error) {
		get, err := cc.List(kind)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, t *Txn) (bool, error) {
			l, err := get(ctx, t)
			if err != nil {
				return false, err
			}
			return l.Match(t, subject(t))
		}, nil
	}
}

// StringList returns the items of a constant colon-separated list value
// (for conditions such as spf = pass : !fail), with positions.
func (cc *CondCompile) StringList() ([]config.ListItem, bool) {
	text, ok := cc.Value.Constant()
	if !ok {
		return nil, false
	}
	return config.SplitList(config.NewValue(text, cc.Pos)), true
}

// ResultList compiles a list of result words such as "pass : !fail" for a
// condition like spf or dmarc_status: each item must be one of valid
// (checked at load time for constant values); "!" inverts an item. The
// returned function reports whether a result matches: items are tried left
// to right, and the first that matches (positively, or by a negated item
// not matching) succeeds.
func (cc *CondCompile) ResultList(valid []string, alias map[string]string) (func(ctx context.Context, t *Txn, result string) (bool, error), error) {
	parse := func(text string, pos config.Pos) ([]resultItem, error) {
		var out []resultItem
		for _, it := range config.SplitList(config.NewValue(text, pos)) {
			w := strings.TrimSpace(it.Text)
			neg := false
			for strings.HasPrefix(w, "!") {
				neg, w = !neg, strings.TrimSpace(w[1:])
			}
			if w == "" {
				continue
			}
			w = strings.ToLower(w)
			if a, ok := alias[w]; ok {
				w = a
			}
			found := false
			for _, v := range valid {
				if v == w {
					found = true
				}
			}
			if !found {
				return nil, &posError{it.Pos, fmt.Sprintf("%s: unknown result %q: expected one of %s%s", cc.Name, w, strings.Join(valid, ", "), suggest.Hint(w, "", valid))}
			}
			out = append(out, resultItem{neg, w})
		}
		return out, nil
	}
	match := func(items []resultItem, result string) bool {
		for _, it := range items {
			if (it.word == result) != it.neg {
				return true
			}
		}
		return false
	}
	if text, ok := cc.Value.Constant(); ok {
		items, err := parse(text, cc.Pos)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, cc.Errorf("%s needs at least one result: %s = %s", cc.Name, cc.Name, valid[0])
		}
		return func(_ context.Context, _ *Txn, result string) (bool, error) { return match(items, result), nil }, nil
	}
	expr, pos := cc.Value, cc.Pos
	return func(ctx context.Context, t *Txn, result string) (bool, error) {
		s, err := expr.Eval(ctx, t)
		if err != nil {
			return false, err
		}
		items, err := parse(s, pos)
		if err != nil {
			return false, err
		}
		return match(items, result), nil
	}, nil
}

type resultItem struct {
	neg  bool
	word string
}

// exim's rules for "condition =": a number (0 false), yes/true, no/false;
// anything else is an error.
func eximBool(s string) (bool, error) {
	t := strings.TrimSpace(s)
	digits := strings.TrimPrefix(t, "-")
	if strings.Trim(digits, "0123456789") == "" {
		if t == "" || t == "-" {
			return false, nil
		}
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return true, nil // a very long number is not zero
		}
		return n != 0, nil
	}
	switch strings.ToLower(t) {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid \"condition\" value %q: expected yes, no, true, false or a number", s)
}

func registerCoreConditions(r *Registry) {
	rcpt := func(f func(string) string) func(t *Txn) string { return func(t *Txn) string { return f(t.Rcpt) } }
	for _, d := range []CondDef{
		{Name: "domains", Stages: OnlyRcpt, Doc: "the recipient's domain is in the domain list",
			Compile: ListCondition(config.DomainList, rcpt(func(a string) string { return strings.ToLower(domainOf(a)) }))},
		{Name: "local_parts", Stages: OnlyRcpt, Doc: "the recipient's local part is in the local-part list",
			Compile: ListCondition(config.LocalPartList, rcpt(localPartOf))},
		{Name: "recipients", Stages: OnlyRcpt, Doc: "the recipient is in the address list",
			Compile: ListCondition(config.AddressList, func(t *Txn) string { return t.Rcpt })},
		{Name: "senders", Stages: FromMail, Doc: "the envelope sender is in the address list (an empty item matches <>)",
			Compile: ListCondition(config.AddressList, func(t *Txn) string { return t.Sender })},
		{Name: "sender_domains", Stages: FromMail, Doc: "the envelope sender's domain is in the domain list",
			Compile: ListCondition(config.DomainList, func(t *Txn) string { return t.SenderDomain() })},
		{Name: "hosts", Doc: "the client's IP address (or verified host name) is in the host list; an empty item matches local submission",
			Compile: ListCondition(config.HostList, func(t *Txn) string { return "" })},
		{Name: "authenticated", Stages: FromMail, Doc: "the client authenticated and its login name is in the list (authenticated = * for any)",
			Compile: func(cc *CondCompile) (CondFunc, error) {
				get, err := cc.List(config.LocalPartList)
				if err != nil {
					return nil, err
				}
				return func(ctx context.Context, t *Txn) (bool, error) {
					if t.Conn.AuthID == "" {
						return false, nil
					}
					l, err := get(ctx, t)
					if err != nil {
						return false, err
					}
					return l.Match(t, t.Conn.AuthID)
				}, nil
			}},
		{Name: "condition", Doc: "the expansion gives yes/true or a non-zero number (no/false/0/empty: false; anything else: defer)",
			Compile: func(cc *CondCompile) (CondFunc, error) {
				if s, ok := cc.Value.Constant(); ok {
					v, err := eximBool(s)
					if err != nil {
						cc.prog.rep.Warnf(cc.Pos, "%v: this condition will always defer", err)
					}
					return func(context.Context, *Txn) (bool, error) { return v, err }, nil
				}
				e := cc.Value
				return func(ctx context.Context, t *Txn) (bool, error) {
					s, err := e.Eval(ctx, t)
					if err != nil {
						return false, err
					}
					return eximBool(s)
				}, nil
			}},
		{Name: "acl", Doc: "runs the named ACL: true if it accepts (or discards), false if it denies; defer propagates",
			Compile: compileACLCondition},
	} {
		r.Condition(d)
	}
}

func compileACLCondition(cc *CondCompile) (CondFunc, error) {
	prog := cc.prog.prog
	call := func(ctx context.Context, t *Txn, name string) (bool, error) {
		a := prog.acls[name]
		if a == nil {
			return false, fmt.Errorf("acl: no ACL named %q", name)
		}
		res := prog.run(ctx, a, t)
		switch res.Verb {
		case Accept, Discard:
			return true, nil
		case Deny, Drop:
			return false, nil
		}
		if res.Err != nil {
			return false, res.Err
		}
		return false, fmt.Errorf("ACL %q deferred", name)
	}
	if name, ok := cc.Value.Constant(); ok {
		name = strings.TrimSpace(name)
		if cc.prog.cfg.ACLs[name] == nil {
			var names []string
			for n := range cc.prog.cfg.ACLs {
				names = append(names, n)
			}
			return nil, cc.Errorf("acl: no ACL named %q%s", name, suggest.Hint(name, "", names))
		}
		return func(ctx context.Context, t *Txn) (bool, error) { return call(ctx, t, name) }, nil
	}
	e := cc.Value
	return func(ctx context.Context, t *Txn) (bool, error) {
		name, err := e.Eval(ctx, t)
		if err != nil {
			return false, err
		}
		return call(ctx, t, strings.TrimSpace(name))
	}, nil
}
