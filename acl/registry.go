package acl

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/expand"
)

// CondFunc evaluates a compiled condition for a transaction; ctx bounds
// what it may wait for (the run's deadline).
type CondFunc func(ctx context.Context, t *Txn) (bool, error)

// CondCompile is what a condition's Compile receives.
type CondCompile struct {
	Name  string
	Value *expand.Expr // the value, compiled as an expansion
	Text  string       // the value as written
	Pos   config.Pos   // position of the value
	prog  *compiler
}

// Errorf returns a load-time error at the value's position.
func (cc *CondCompile) Errorf(format string, args ...any) error {
	return &posError{pos: cc.Pos, msg: fmt.Sprintf(format, args...)}
}

// ErrorAt returns a load-time error at byte off of the value.
func (cc *CondCompile) ErrorAt(off int, format string, args ...any) error {
	p := cc.Pos
	p.Col += off
	return &posError{pos: p, msg: fmt.Sprintf(format, args...)}
}

// CondDef declares a condition.
type CondDef struct {
	Name   string
	Stages StageSet // where it may be used; 0 means every stage
	Doc    string
	// Compile prepares the condition at load time. It should check a
	// constant value completely, so that mistakes are load-time errors.
	Compile func(cc *CondCompile) (CondFunc, error)
}

// VarDef declares an expansion variable.
type VarDef struct {
	Name   string
	Stages StageSet // where it has a value; 0 means every stage
	Doc    string
	Get    func(ctx context.Context, t *Txn) (string, error)
}

// ControlDef declares a `control = name[/arg]` value.
type ControlDef struct {
	Name   string
	Stages StageSet
	Doc    string
	// Arg says whether the control takes "/arg": ArgNone, ArgOptional,
	// ArgRequired.
	Arg ArgRule
	// Apply runs when the modifier is reached; the default records the
	// control on the transaction (Txn.Control).
	Apply func(t *Txn, arg string) error
}

// ArgRule says whether a control takes an argument.
type ArgRule int

// Argument rules for controls.
const (
	ArgNone ArgRule = iota
	ArgOptional
	ArgRequired
)

// Hook is work a feature does at a stage whatever the ACLs say, before the
// stage's ACL runs: for example evaluating SPF at DATA so that the
// Authentication-Results header carries it. A hook's error is logged on the
// transaction and does not change the verdict; conditions that need the
// same result report their own error.
type Hook struct {
	Name   string
	Stages StageSet
	Run    func(ctx context.Context, t *Txn) error
}

// Configurer reads a feature's main options when a configuration is
// compiled. Its value is kept on the Program (so a reload never changes
// what running sessions see) and read with Txn.Feature or
// CondCompile.Feature. An error — preferably a config.ErrorList pointing at
// the option — makes the configuration invalid.
type Configurer struct {
	Name      string
	Configure func(cfg *config.Config) (any, error)
}

// Registry holds the conditions, variables and controls a Program may use.
type Registry struct {
	hooks     []Hook
	bodyHooks []BodyHook
	finishers []Finisher
	confs     []Configurer
	// acceptHooks run after an accepting DATA ACL (accepted.go).
	acceptHooks []AcceptHook
	mu          sync.RWMutex
	conds       map[string]*CondDef
	vars        map[string]*VarDef
	controls    map[string]*ControlDef
}

// Default is the registry the daemon compiles with. Feature packages
// register into it from init functions.
var Default = NewRegistry()

// NewRegistry returns a registry holding the core conditions and variables.
func NewRegistry() *Registry {
	r := &Registry{conds: map[string]*CondDef{}, vars: map[string]*VarDef{}, controls: map[string]*ControlDef{}}
	registerCoreConditions(r)
	registerCoreVars(r)
	r.Control(ControlDef{Name: "quarantine", Arg: ArgOptional,
		Doc: "hold the message (Postfix hold queue, Sendmail quarantine): control = quarantine/REASON"})
	return r
}

// AddHook registers a stage hook; hooks run in registration order.
func (r *Registry) AddHook(h Hook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, h)
}

// AddConfigurer registers a feature's configuration reader.
func (r *Registry) AddConfigurer(c Configurer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.confs = append(r.confs, c)
}

// Configurers returns the registered configuration readers.
func (r *Registry) Configurers() []Configurer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Configurer(nil), r.confs...)
}

// Feature returns the value a Configurer of that name produced for the
// Program being compiled (nil when there is none).
func (cc *CondCompile) Feature(name string) any { return cc.prog.prog.features[name] }

// Hooks returns the registered hooks.
func (r *Registry) Hooks() []Hook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Hook(nil), r.hooks...)
}

// Condition registers a condition. It panics on a duplicate name.
func (r *Registry) Condition(d CondDef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.conds[d.Name]; dup || isModifier(d.Name) {
		panic("acl: condition registered twice: " + d.Name)
	}
	r.conds[d.Name] = &d
}

// Variable registers an expansion variable. It panics on a duplicate.
func (r *Registry) Variable(d VarDef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.vars[d.Name]; dup {
		panic("acl: variable registered twice: " + d.Name)
	}
	r.vars[d.Name] = &d
}

// Control registers a control. It panics on a duplicate.
func (r *Registry) Control(d ControlDef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.controls[d.Name]; dup {
		panic("acl: control registered twice: " + d.Name)
	}
	r.controls[d.Name] = &d
}

func (r *Registry) cond(name string) *CondDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.conds[name]
}

func (r *Registry) variable(name string) *VarDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.vars[name]
}

func (r *Registry) control(name string) *ControlDef {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.controls[name]
}

// ConditionNames returns every registered condition name, sorted.
func (r *Registry) ConditionNames() []string { return sortedKeys(&r.mu, r.conds) }

// VariableNames returns every registered variable name, sorted.
func (r *Registry) VariableNames() []string { return sortedKeys(&r.mu, r.vars) }

// ControlNames returns every registered control name, sorted.
func (r *Registry) ControlNames() []string { return sortedKeys(&r.mu, r.controls) }

// Conditions returns the condition definitions, sorted by name.
func (r *Registry) Conditions() []*CondDef {
	var out []*CondDef
	for _, n := range r.ConditionNames() {
		out = append(out, r.cond(n))
	}
	return out
}

// Variables returns the variable definitions, sorted by name.
func (r *Registry) Variables() []*VarDef {
	var out []*VarDef
	for _, n := range r.VariableNames() {
		out = append(out, r.variable(n))
	}
	return out
}

// Controls returns the control definitions, sorted by name.
func (r *Registry) Controls() []*ControlDef {
	var out []*ControlDef
	for _, n := range r.ControlNames() {
		out = append(out, r.control(n))
	}
	return out
}

func sortedKeys[V any](mu *sync.RWMutex, m map[string]V) []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// modifiers are built into the language.
var modifierNames = []string{"add_header", "control", "delay", "log_message", "logwrite", "message", "remove_header", "set"}

func isModifier(name string) bool {
	for _, m := range modifierNames {
		if m == name {
			return true
		}
	}
	return false
}

// posError is a load-time error at a position.
type posError struct {
	pos config.Pos
	msg string
}

func (e *posError) Error() string { return e.pos.String() + ": " + e.msg }
