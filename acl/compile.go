package acl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/eximlist"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

// Verb is an ACL verb.
type Verb string

// The verbs. Accept, Deny, Defer, Discard and Drop are also the verdicts a
// run returns.
const (
	Accept  Verb = "accept"
	Defer   Verb = "defer"
	Deny    Verb = "deny"
	Discard Verb = "discard"
	Drop    Verb = "drop"
	Require Verb = "require"
	Warn    Verb = "warn"
)

// MaxDelay caps the delay modifier.
const MaxDelay = 5 * time.Minute

// MaxCallDepth bounds nested "acl =" calls.
const MaxCallDepth = 20

type itemKind int

const (
	kCond itemKind = iota
	kMessage
	kLogMessage
	kAction // a modifier with an effect: set, logwrite, add_header, …
)

type item struct {
	kind   itemKind
	name   string
	pos    config.Pos
	where  string // "pos: name", the prefix of its errors
	neg    bool
	cond   CondFunc
	expr   *expand.Expr         // message, log_message
	action func(r runner) error // other modifiers (r by value: a run allocates no runner)
}

type statement struct {
	verb  Verb
	pos   config.Pos
	items []item
}

type aclProg struct {
	name   string
	pos    config.Pos
	stmts  []statement
	stages StageSet
}

// Program is a compiled configuration's ACLs, ready to run. It is immutable
// and safe for concurrent use.
type Program struct {
	acls     map[string]*aclProg
	stage    [numStages]*aclProg
	varsC    map[string]int
	varsM    map[string]int
	limits   expand.Limits
	timeout  time.Duration
	hooks    [numStages][]Hook
	features map[string]any
	// bodyHooks and finishers are the registry's, as compiled with.
	bodyHooks []BodyHook
	finishers []Finisher
	// acceptHooks run after an accepting DATA ACL (accepted.go).
	acceptHooks []AcceptHook
	Warnings    config.ErrorList
}

// NumConnVars and NumMsgVars size Conn.Vars and Txn.Vars.
func (p *Program) NumConnVars() int { return len(p.varsC) }

// NumMsgVars returns the number of acl_m variables.
func (p *Program) NumMsgVars() int { return len(p.varsM) }

// ACLFor returns the name of the ACL that runs at stage, or "".
func (p *Program) ACLFor(s Stage) string {
	if a := p.stage[s]; a != nil {
		return a.name
	}
	return ""
}

// Feature returns the value the named Configurer produced.
func (p *Program) Feature(name string) any { return p.features[name] }

// HasACL reports whether an ACL of that name exists.
func (p *Program) HasACL(name string) bool { return p.acls[name] != nil }

type compiler struct {
	reg    *Registry
	cfg    *config.Config
	rep    *config.Reporter
	lists  *eximlist.Compiler
	prog   *Program
	stages map[string]StageSet
	via    map[string]string // ACL name -> how it is reached, for messages
	// scopeFor, when set, gives the scope of expansions (main options
	// compiled by Registry.CompileOption).
	scopeFor func(a *aclProg) expand.Scope
}

// Compile compiles the ACLs of a loaded configuration with the conditions,
// variables and controls of reg. The error, if any, is a config.ErrorList
// holding every problem; warnings are in Program.Warnings.
func Compile(cfg *config.Config, reg *Registry) (*Program, error) {
	rep := cfg.Reporter
	if rep == nil {
		rep = &config.Reporter{}
	}
	start := len(rep.List)
	c := &compiler{
		reg: reg, cfg: cfg, rep: rep,
		lists: eximlist.ForConfig(cfg),
		prog: &Program{acls: map[string]*aclProg{}, varsC: map[string]int{}, varsM: map[string]int{},
			limits: expand.Limits{MaxOutput: int(cfg.Int("expansion_max_size"))}, timeout: cfg.Duration("acl_timeout")},
		stages: map[string]StageSet{}, via: map[string]string{},
	}
	c.prog.features = map[string]any{}
	for _, fc := range reg.Configurers() {
		v, err := fc.Configure(cfg)
		if err != nil {
			for _, e := range config.AsList(err) {
				if e.Source == "" && e.Pos.IsValid() {
					e.Source = rep.Source(e.Pos.File, e.Pos.Line)
				}
				rep.List = append(rep.List, e)
			}
			continue
		}
		c.prog.features[fc.Name] = v
	}
	for _, h := range reg.Hooks() {
		for _, s := range Stages() {
			if h.Stages.norm().Has(s) {
				c.prog.hooks[s] = append(c.prog.hooks[s], h)
			}
		}
	}
	c.prog.bodyHooks, c.prog.finishers = reg.lifecycle()
	c.prog.acceptHooks = reg.acceptHookList()
	c.collectVars()
	c.reach()
	for _, def := range cfg.File.ACLs {
		if _, dup := c.prog.acls[def.Name]; dup {
			continue
		}
		c.prog.acls[def.Name] = &aclProg{name: def.Name, pos: def.Pos, stages: c.stages[def.Name]}
	}
	for _, def := range cfg.File.ACLs {
		a := c.prog.acls[def.Name]
		if a.pos != def.Pos {
			continue // a duplicate, already reported by config
		}
		if a.stages == 0 {
			rep.Warnf(def.Pos, "ACL %q is never used: no acl_smtp_* option or \"acl =\" condition names it", def.Name)
		}
		for _, st := range def.Statements {
			a.stmts = append(a.stmts, c.statement(a, st))
		}
	}
	for _, s := range Stages() {
		if name := cfg.String(s.Option()); name != "" {
			c.prog.stage[s] = c.prog.acls[name]
		}
	}
	list := rep.List[start:]
	list.Sort()
	c.prog.Warnings = list.Warnings()
	if err := list.Err(); err != nil {
		return nil, list
	}
	return c.prog, nil
}

// collectVars assigns a slot to every acl_c/acl_m variable that a "set"
// modifier sets.
func (c *compiler) collectVars() {
	for _, def := range c.cfg.File.ACLs {
		for _, st := range def.Statements {
			for _, it := range st.Items {
				if it.Name != "set" || it.Arg == "" {
					continue
				}
				if m, ok := c.varMap(it.Arg); ok {
					if _, seen := m[it.Arg]; !seen {
						m[it.Arg] = len(m)
					}
				}
			}
		}
	}
}

func (c *compiler) varMap(name string) (map[string]int, bool) {
	switch {
	case isACLVar(name, "acl_c"):
		return c.prog.varsC, true
	case isACLVar(name, "acl_m"):
		return c.prog.varsM, true
	}
	return nil, false
}

// isACLVar accepts acl_c0…acl_c9 and acl_c_name (likewise acl_m).
func isACLVar(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return false
	}
	if len(rest) == 1 && rest[0] >= '0' && rest[0] <= '9' {
		return true
	}
	if rest[0] != '_' || len(rest) < 2 {
		return false
	}
	for i := 1; i < len(rest); i++ {
		ch := rest[i]
		if !(ch == '_' || ('a' <= ch && ch <= 'z') || ('A' <= ch && ch <= 'Z') || ('0' <= ch && ch <= '9')) {
			return false
		}
	}
	return true
}

// reach computes the stages each ACL runs at, from the acl_smtp_* options
// and constant "acl =" references.
func (c *compiler) reach() {
	calls := map[string][]string{}
	callPos := map[string][]config.Pos{}
	for _, def := range c.cfg.File.ACLs {
		for _, st := range def.Statements {
			for _, it := range st.Items {
				if it.Name == "acl" && !strings.ContainsAny(it.Value.Text, "$") {
					calls[def.Name] = append(calls[def.Name], strings.TrimSpace(it.Value.Text))
					callPos[def.Name] = append(callPos[def.Name], it.Value.Pos)
				}
			}
		}
	}
	c.warnCycles(calls, callPos)
	var visit func(name string, s Stage, via string)
	visit = func(name string, s Stage, via string) {
		if c.stages[name].Has(s) {
			return
		}
		c.stages[name] |= Of(s)
		if _, ok := c.via[name]; !ok {
			c.via[name] = via
		}
		for _, callee := range calls[name] {
			visit(callee, s, via+" via \"acl = "+callee+"\"")
		}
	}
	for _, s := range Stages() {
		if name := c.cfg.String(s.Option()); name != "" {
			visit(name, s, s.Option())
		}
	}
}

// warnCycles warns at each "acl =" call that closes a cycle of ACLs
// calling each other: such a run recurses until MaxCallDepth and defers,
// unless a condition before the call stops it.
func (c *compiler) warnCycles(calls map[string][]string, callPos map[string][]config.Pos) {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = onPath
		path = append(path, name)
		for i, callee := range calls[name] {
			switch state[callee] {
			case unseen:
				if c.cfg.ACLs[callee] != nil {
					visit(callee)
				}
			case onPath:
				start := slices.Index(path, callee)
				cycle := append(slices.Clone(path[start:]), callee)
				what := fmt.Sprintf("ACL %q calls itself", callee)
				if len(cycle) > 2 {
					what = "ACLs call each other in a cycle: " + strings.Join(cycle, " → ")
				}
				c.rep.Warnf(callPos[name][i], "%s; a run that goes round it defers after %d nested calls, unless a condition before \"acl =\" stops it", what, MaxCallDepth)
			}
		}
		path = path[:len(path)-1]
		state[name] = done
	}
	for _, def := range c.cfg.File.ACLs {
		if state[def.Name] == unseen {
			visit(def.Name)
		}
	}
}

func (c *compiler) errorf(pos config.Pos, format string, args ...any) {
	c.rep.Errorf(pos, format, args...)
}

func (c *compiler) report(err error) {
	var pe *posError
	if errors.As(err, &pe) {
		c.rep.Errorf(pe.pos, "%s", pe.msg)
		return
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		c.rep.Errorf(ce.Pos, "%s", ce.Msg)
		return
	}
	c.rep.Errorf(config.Pos{}, "%v", err)
}

func (c *compiler) stageProblem(what string, avail StageSet, a *aclProg) string {
	avail = avail.norm()
	if a.stages&^avail == 0 {
		return ""
	}
	bad := a.stages &^ avail
	return fmt.Sprintf("%s cannot be used in ACL %q, which runs at %s (%s): it is available at %s",
		what, a.name, bad, c.via[a.name], avail)
}

func (c *compiler) statement(a *aclProg, st *config.Statement) statement {
	out := statement{verb: Verb(st.Verb), pos: st.Pos}
	for _, it := range st.Items {
		if ci, ok := c.item(a, out.verb, it); ok {
			out.items = append(out.items, ci)
		}
	}
	return out
}

func (c *compiler) item(a *aclProg, verb Verb, it *config.Item) (item, bool) {
	ci := item{name: it.Name, pos: it.Pos, neg: it.Negated, where: it.Pos.String() + ": " + it.Name}
	if !it.HasValue {
		if it.Name == "endpass" {
			c.errorf(it.Pos, "\"endpass\" is obsolete and not supported: split the statement instead")
		} else {
			c.errorf(it.Pos, "%q needs a value: %s = …", it.Name, it.Name)
		}
		return ci, false
	}
	if isModifier(it.Name) {
		if it.Negated {
			c.errorf(it.Pos, "modifier %q cannot be negated with \"!\"", it.Name)
			return ci, false
		}
		return c.modifier(a, verb, it, ci)
	}
	if it.Arg != "" {
		c.errorf(it.ArgPos, "unexpected %q after %q: expected \"=\"", it.Arg, it.Name)
		return ci, false
	}
	def := c.reg.cond(it.Name)
	if def == nil {
		names := append(c.reg.ConditionNames(), modifierNames...)
		c.errorf(it.Pos, "unknown condition or modifier %q%s", it.Name, suggest.Hint(it.Name, "", names))
		return ci, false
	}
	if msg := c.stageProblem("condition \""+it.Name+"\"", def.Stages, a); msg != "" {
		c.errorf(it.Pos, "%s", msg)
		return ci, false
	}
	expr, ok := c.expr(a, it.Value)
	if !ok {
		return ci, false
	}
	fn, err := def.Compile(&CondCompile{Name: it.Name, Value: expr, Text: it.Value.Text, Pos: it.Value.Pos, prog: c})
	if err != nil {
		c.report(err)
		return ci, false
	}
	ci.kind, ci.cond = kCond, fn
	return ci, true
}

// expr compiles a value as an expansion in the scope of ACL a.
func (c *compiler) expr(a *aclProg, v config.Value) (*expand.Expr, bool) {
	var sc expand.Scope = &scope{c: c, acl: a}
	if c.scopeFor != nil {
		sc = c.scopeFor(a)
	}
	e, err := expand.Compile(v.Text, sc)
	if err != nil {
		for _, ee := range flatten(err) {
			var xe *expand.Error
			if errors.As(ee, &xe) {
				c.errorf(v.PosAt(xe.Offset), "%s", xe.Msg)
			} else {
				c.errorf(v.Pos, "%v", ee)
			}
		}
		return nil, false
	}
	return e, true
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// scope resolves variables for expansions in one ACL.
type scope struct {
	c   *compiler
	acl *aclProg
}

func (s *scope) Var(name string) (expand.Getter, error) {
	c := s.c
	if m, ok := c.varMap(name); ok {
		idx, set := m[name]
		if !set {
			var names []string
			for n := range c.prog.varsC {
				names = append(names, n)
			}
			for n := range c.prog.varsM {
				names = append(names, n)
			}
			return nil, fmt.Errorf("variable $%s is never set by a \"set\" modifier%s", name, suggest.Hint(name, "$", names))
		}
		if strings.HasPrefix(name, "acl_c") {
			return func(_ context.Context, env expand.Env) (string, error) { return slot(env.(*Txn).Conn.Vars, idx), nil }, nil
		}
		return func(_ context.Context, env expand.Env) (string, error) { return slot(env.(*Txn).Vars, idx), nil }, nil
	}
	d := c.reg.variable(name)
	if d == nil {
		return nil, fmt.Errorf("unknown variable $%s%s", name, suggest.Hint(name, "$", c.reg.VariableNames()))
	}
	if msg := c.stageProblem("variable $"+name, d.Stages, s.acl); msg != "" {
		return nil, errors.New(msg)
	}
	get := d.Get
	return func(ctx context.Context, env expand.Env) (string, error) { return get(ctx, env.(*Txn)) }, nil
}

func (s *scope) Headers() error {
	if msg := s.c.stageProblem("header variables ($h_…)", OnlyData, s.acl); msg != "" {
		return errors.New(msg)
	}
	return nil
}

func slot(vars []string, i int) string {
	if i < len(vars) {
		return vars[i]
	}
	return ""
}
