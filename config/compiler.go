package config

import "sync"

// Compiler turns a feature's options into what the feature runs with (a
// compiled list, a key read from disk, a set of rules) when a
// configuration is loaded, so that `sidecar check-config` reports their
// mistakes exactly as the daemon would meet them. Features register one
// from an init function; Load runs them in registration order, after the
// options, named lists and ACL definitions are read, even when those have
// errors, so that one load reports every problem.
//
// Compile returns the compiled value, which Config.Compiled gives back
// later, and an error: preferably an ErrorList (or *Error) pointing at
// the option. A value returned with an error is kept too.
type Compiler struct {
	Name    string
	Compile func(cfg *Config) (any, error)
}

var (
	compilersMu sync.RWMutex
	compilers   []Compiler
	compilerSet = map[string]bool{}
)

// RegisterCompiler adds a load-time compiler. It panics on a duplicate
// name: that is a programming error.
func RegisterCompiler(c Compiler) {
	compilersMu.Lock()
	defer compilersMu.Unlock()
	if compilerSet[c.Name] {
		panic("config: compiler registered twice: " + c.Name)
	}
	compilerSet[c.Name] = true
	compilers = append(compilers, c)
}

func registeredCompilers() []Compiler {
	compilersMu.RLock()
	defer compilersMu.RUnlock()
	return append([]Compiler(nil), compilers...)
}

// runCompilers runs every registered compiler over c, recording what they
// produce and every error they report.
func (c *Config) runCompilers(r *Reporter) {
	for _, comp := range registeredCompilers() {
		v, err := comp.Compile(c)
		if v != nil {
			c.SetCompiled(comp.Name, v)
		}
		for _, e := range AsList(err) {
			if e.Source == "" && e.Pos.IsValid() {
				e.Source = r.Source(e.Pos.File, e.Pos.Line)
			}
			r.List = append(r.List, e)
		}
	}
}

// Compiled returns what the load-time compiler of that name produced for
// this configuration.
func (c *Config) Compiled(name string) (any, bool) {
	v, ok := c.compiled[name]
	return v, ok
}

// SetCompiled records a compiled value for a configuration loaded before
// its compiler was registered (tests that build a Config by hand). A
// configuration is not safe for concurrent use until it is loaded.
func (c *Config) SetCompiled(name string, v any) {
	if c.compiled == nil {
		c.compiled = map[string]any{}
	}
	c.compiled[name] = v
}
