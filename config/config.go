package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/internal/suggest"
)

// Config is a loaded configuration: the parsed file and the typed values of
// every registered main option (set in the file, or defaulted).
type Config struct {
	File     *File
	Settings map[string]*Setting
	Lists    map[string]*ListDef
	ACLs     map[string]*ACLDef
	Reporter *Reporter // holds the source text for later error reports
	compiled map[string]any
}

// LoadFile reads and checks a configuration file. The returned error, when
// not nil, is an ErrorList; warnings alone do not make an error and are
// returned in Config.Reporter.List.
func LoadFile(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read configuration: %v", err)}}
	}
	return Load(path, src)
}

// Load parses and checks configuration text named name.
func Load(name string, src []byte) (*Config, error) {
	r := &Reporter{}
	f := Parse(name, src, r)
	c := &Config{File: f, Settings: map[string]*Setting{}, Lists: map[string]*ListDef{}, ACLs: map[string]*ACLDef{}, Reporter: r}
	c.typeOptions(r)
	for _, l := range f.Lists {
		if prev, dup := c.Lists[l.Name]; dup {
			r.Errorf(l.Pos, "list %q is already defined at %s", l.Name, prev.Pos)
			continue
		}
		c.Lists[l.Name] = l
	}
	for _, a := range f.ACLs {
		if prev, dup := c.ACLs[a.Name]; dup {
			r.Errorf(a.Pos, "ACL %q is already defined at %s", a.Name, prev.Pos)
			continue
		}
		c.ACLs[a.Name] = a
	}
	for _, d := range Registered() {
		if d.Kind != KindACLName {
			continue
		}
		if s := c.Settings[d.Name]; s.Set && s.Str != "" && c.ACLs[s.Str] == nil {
			r.Errorf(s.Value.Pos, "%s names ACL %q, which is not defined after \"begin acl\"%s", d.Name, s.Str, suggest.Hint(s.Str, "", c.aclNames()))
		}
	}
	c.runCompilers(r)
	r.List.Sort()
	return c, r.List.Err()
}

func (c *Config) aclNames() []string {
	var out []string
	for n := range c.ACLs {
		out = append(out, n)
	}
	return out
}

func (c *Config) typeOptions(r *Reporter) {
	seen := map[string]*OptionLine{}
	for _, ol := range c.File.Options {
		name, value, hasValue := ol.Name, ol.Value, ol.HasValue
		d := lookupOption(name)
		reported := false
		if d == nil && !hasValue {
			for _, pfx := range []string{"no_", "not_"} {
				if base, ok := strings.CutPrefix(name, pfx); ok {
					if bd := lookupOption(base); bd != nil {
						if bd.Kind != KindBool {
							r.Errorf(ol.Pos, "%q applies only to boolean options, and %s is a %s", pfx, base, bd.Kind)
							d, reported = bd, true
							break
						}
						d, name, value, hasValue = bd, base, NewValue("false", ol.Pos), true
					}
				}
			}
		}
		if d == nil {
			r.Errorf(ol.Pos, "unknown option %q%s", ol.Name, suggest.Hint(ol.Name, "", optionNames()))
			continue
		}
		if reported {
			continue // a no_ prefix on a non-boolean
		}
		if !hasValue {
			if d.Kind != KindBool {
				r.Errorf(ol.Pos, "option %q needs a value: %s = …", name, name)
				continue
			}
			value = NewValue("true", ol.Pos)
		}
		if prev, dup := seen[name]; dup {
			r.Warnf(ol.Pos, "option %q is set again; this overrides the setting at line %d", name, prev.Pos.Line)
		}
		seen[name] = ol
		s, err := parseSetting(d, value)
		if err != nil {
			off := 0
			if se, ok := err.(*settingError); ok {
				off = se.off
			}
			r.Errorf(value.PosAt(off), "%v", err)
			continue
		}
		s.Set = true
		c.Settings[name] = s
	}
	for _, d := range Registered() {
		if _, ok := c.Settings[d.Name]; !ok {
			s, _ := parseSetting(d, NewValue(d.Default, Pos{File: "default"}))
			c.Settings[d.Name] = s
		}
	}
}

// Get returns the setting of a registered option. It panics for a name
// that is not registered: that is a programming error.
func (c *Config) Get(name string) *Setting {
	s, ok := c.Settings[name]
	if !ok {
		if d := lookupOption(name); d != nil { // registered after Load
			s, _ = parseSetting(d, NewValue(d.Default, Pos{File: "default"}))
			return s
		}
		panic("config: option not registered: " + name)
	}
	return s
}

// String returns a string, path, enum or ACL-name option.
func (c *Config) String(name string) string { return c.Get(name).Str }

// Bool returns a boolean option.
func (c *Config) Bool(name string) bool { return c.Get(name).Bool }

// Int returns an integer option.
func (c *Config) Int(name string) int64 { return c.Get(name).Int }

// Duration returns a duration option.
func (c *Config) Duration(name string) time.Duration { return c.Get(name).Dur }
