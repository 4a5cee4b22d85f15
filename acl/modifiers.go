package acl

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

func (c *compiler) modifier(a *aclProg, verb Verb, it *config.Item, ci item) (item, bool) {
	if it.Arg != "" && it.Name != "set" {
		c.errorf(it.ArgPos, "unexpected %q after %q: expected \"=\"", it.Arg, it.Name)
		return ci, false
	}
	switch it.Name {
	case "message", "log_message":
		if it.Name == "message" && verb == Warn {
			c.rep.Warnf(it.Pos, "\"message\" has no effect on warn: use add_header or log_message")
		}
		e, ok := c.expr(a, it.Value)
		if !ok {
			return ci, false
		}
		ci.kind, ci.expr = kMessage, e
		if it.Name == "log_message" {
			ci.kind = kLogMessage
		}
		return ci, true
	case "set":
		return c.setModifier(a, it, ci)
	case "control":
		return c.controlModifier(a, it, ci)
	case "delay":
		return c.delayModifier(a, it, ci)
	}
	e, ok := c.expr(a, it.Value)
	if !ok {
		return ci, false
	}
	ci.kind = kAction
	switch it.Name {
	case "logwrite":
		ci.action = func(r runner) error {
			s, err := r.eval(e)
			if err != nil {
				return err
			}
			r.log("logwrite", ci.pos, stripLogSelector(s))
			return nil
		}
	case "add_header":
		ci.action = func(r runner) error {
			s, err := r.eval(e)
			if err != nil {
				return err
			}
			if h, ok := headerText(s); ok {
				r.t.AddHeaders = append(r.t.AddHeaders, h)
			}
			return nil
		}
	case "remove_header":
		ci.action = func(r runner) error {
			s, err := r.eval(e)
			if err != nil {
				return err
			}
			for _, li := range config.SplitList(config.NewValue(s, ci.pos)) {
				if name := strings.TrimSuffix(li.Text, ":"); name != "" {
					r.t.RemoveHeaders = append(r.t.RemoveHeaders, name)
				}
			}
			return nil
		}
	}
	return ci, true
}

// stripLogSelector drops Exim's ":main,reject:" log selection prefix.
func stripLogSelector(s string) string {
	if strings.HasPrefix(s, ":") {
		if i := strings.Index(s[1:], ":"); i >= 0 {
			return strings.TrimLeft(s[i+2:], " ")
		}
	}
	return s
}

// headerText turns an add_header value into a header to add. As in Exim,
// ":at_start:" puts it above the other headers, and text that does not
// start with a header name gets "X-ACL-Warn: " in front.
func headerText(s string) (AddedHeader, bool) {
	h := AddedHeader{}
	for {
		switch {
		case strings.HasPrefix(s, ":at_start:"):
			h.AtStart, s = true, s[len(":at_start:"):]
			continue
		case strings.HasPrefix(s, ":at_end:"):
			h.AtStart, s = false, s[len(":at_end:"):]
			continue
		}
		break
	}
	for s != "" && (s[len(s)-1] == '\r' || s[len(s)-1] == '\n') {
		s = s[:len(s)-1]
	}
	if strings.TrimSpace(s) == "" {
		return h, false
	}
	name, _, ok := strings.Cut(s, ":")
	if !ok || name == "" || strings.IndexByte(name, ' ') >= 0 || strings.IndexByte(name, '\t') >= 0 {
		s = "X-ACL-Warn: " + s
	}
	h.Text = s
	return h, true
}

func (c *compiler) setModifier(a *aclProg, it *config.Item, ci item) (item, bool) {
	m, ok := c.varMap(it.Arg)
	if it.Arg == "" || !ok {
		c.errorf(it.Pos, "set needs a variable acl_c0…acl_c9, acl_c_NAME, acl_m0…acl_m9 or acl_m_NAME: set acl_m_NAME = value")
		return ci, false
	}
	e, ok := c.expr(a, it.Value)
	if !ok {
		return ci, false
	}
	idx := m[it.Arg]
	conn := strings.HasPrefix(it.Arg, "acl_c")
	n := len(m)
	ci.kind = kAction
	ci.action = func(r runner) error {
		s, err := r.eval(e)
		if err != nil {
			return err
		}
		vars := &r.t.Vars
		if conn {
			vars = &r.t.Conn.Vars
		}
		if len(*vars) < n {
			*vars = append(*vars, make([]string, n-len(*vars))...)
		}
		(*vars)[idx] = s
		return nil
	}
	return ci, true
}

func (c *compiler) controlModifier(a *aclProg, it *config.Item, ci item) (item, bool) {
	text := it.Value.Text
	if strings.Contains(text, "$") {
		c.errorf(it.Value.Pos, "control takes a fixed name, not an expansion")
		return ci, false
	}
	name, arg, hasArg := strings.Cut(text, "/")
	def := c.reg.control(name)
	if def == nil {
		names := c.reg.ControlNames()
		hint := suggest.Hint(name, "", names)
		if len(names) > 0 && hint == "" {
			hint = " (known controls: " + strings.Join(names, ", ") + ")"
		}
		c.errorf(it.Value.Pos, "unknown control %q%s", name, hint)
		return ci, false
	}
	if msg := c.stageProblem("control \""+name+"\"", def.Stages, a); msg != "" {
		c.errorf(it.Value.Pos, "%s", msg)
		return ci, false
	}
	switch {
	case def.Arg == ArgNone && hasArg:
		c.errorf(it.Value.PosAt(len(name)), "control %q takes no argument", name)
		return ci, false
	case def.Arg == ArgRequired && arg == "":
		c.errorf(it.Value.Pos, "control %q needs an argument: control = %s/VALUE", name, name)
		return ci, false
	}
	apply := def.Apply
	ci.kind = kAction
	ci.action = func(r runner) error {
		if apply != nil {
			return apply(r.t, arg)
		}
		r.t.SetControl(name, arg)
		return nil
	}
	return ci, true
}

func (c *compiler) delayModifier(a *aclProg, it *config.Item, ci item) (item, bool) {
	e, ok := c.expr(a, it.Value)
	if !ok {
		return ci, false
	}
	parse := func(s string) (time.Duration, error) {
		d, err := config.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("delay: %w", err)
		}
		return min(d, MaxDelay), nil
	}
	var fixed time.Duration = -1
	if s, ok := e.Constant(); ok {
		d, err := parse(s)
		if err != nil {
			c.errorf(it.Value.Pos, "%v", err)
			return ci, false
		}
		if d >= 30*time.Second {
			c.rep.Warnf(it.Value.Pos, "a delay of %s may exceed the MTA's milter timeout (Postfix milter_command_timeout is 30s)", d)
		}
		fixed = d
	}
	ci.kind = kAction
	ci.action = func(r runner) error {
		d := fixed
		if d < 0 {
			s, err := r.eval(e)
			if err != nil {
				return err
			}
			if d, err = parse(s); err != nil {
				return err
			}
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return nil
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return ci, true
}

var _ = expand.DefaultMaxOutput
