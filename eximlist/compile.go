package eximlist

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

// MaxCost bounds the work of one match: the items it may try, counting
// those of the +name lists it reaches and a regular expression as
// regexCost items. A list whose nested +name references fan out past it
// is refused when it is compiled, so that matching needs no deadline.
const MaxCost = 1 << 20

const regexCost = 8

// Named holds the compiled named lists of one configuration.
type Named struct {
	defs   map[string]*config.ListDef
	lists  map[string]*List
	broken map[string]bool // named lists with errors (already reported)
}

// compilerName is the name of the load-time compiler of the named lists.
const compilerName = "eximlist"

func init() {
	config.RegisterCompiler(config.Compiler{Name: compilerName, Compile: func(cfg *config.Config) (any, error) {
		n, errs := compileNamed(cfg)
		return n, errs.Err()
	}})
}

// compileNamed compiles every named list of cfg.
func compileNamed(cfg *config.Config) (*Named, config.ErrorList) {
	n := &Named{defs: cfg.Lists, lists: map[string]*List{}, broken: map[string]bool{}}
	var names []string
	for name := range cfg.Lists {
		names = append(names, name)
	}
	sort.Strings(names)
	c := &Compiler{named: n, busy: map[string]bool{}}
	var errs config.ErrorList
	for _, name := range names {
		if _, err := c.namedList(name); err != nil && !errors.Is(err, errBroken) {
			errs = append(errs, config.AsList(err)...)
		}
	}
	return n, errs
}

// Compiler compiles the lists of one configuration, resolving +name
// references to its named lists. It is safe for concurrent use.
type Compiler struct {
	named *Named
	busy  map[string]bool // named lists being compiled (load time only)
}

// ForConfig returns the compiler of cfg's lists (nil cfg: no named
// lists). The named lists were compiled when cfg was loaded; their errors
// were reported then.
func ForConfig(cfg *config.Config) *Compiler {
	if cfg == nil {
		return &Compiler{named: &Named{}}
	}
	if v, ok := cfg.Compiled(compilerName); ok {
		return &Compiler{named: v.(*Named)}
	}
	// A configuration loaded without the compiler registered.
	n, errs := compileNamed(cfg)
	cfg.SetCompiled(compilerName, n)
	if cfg.Reporter != nil {
		for _, e := range errs {
			if e.Source == "" {
				e.Source = cfg.Reporter.Source(e.Pos.File, e.Pos.Line)
			}
			cfg.Reporter.List = append(cfg.Reporter.List, e)
		}
	}
	return &Compiler{named: n}
}

// Compile compiles the list value v of the given kind. The error is a
// *config.Error at the position of the faulty item.
func (c *Compiler) Compile(kind config.ListKind, v config.Value) (*List, error) {
	l := &List{kind: kind, text: v.Text}
	for _, it := range config.SplitList(v) {
		text, off := it.Text, it.Off
		neg := false
		for strings.HasPrefix(text, "!") {
			neg = !neg
			rest := strings.TrimLeft(text[1:], " \t")
			off += len(text) - len(rest)
			text = rest
		}
		pos := v.PosAt(off)
		ci, err := c.item(kind, text, pos)
		if err != nil {
			return nil, err
		}
		if ci == nil {
			continue
		}
		ci.neg = neg
		cost := 1
		switch {
		case ci.kind == itemList:
			cost = ci.sub.cost
		case ci.kind == itemRegex:
			cost = regexCost
		}
		l.cost += cost
		if l.cost > MaxCost {
			return nil, errorf(pos, "%q makes a match try more than %d items, through nested +name references: it would take too long", text, MaxCost)
		}
		l.items = append(l.items, *ci)
	}
	return l, nil
}

// MustCompile compiles a list without named lists; it panics on an
// error. Tests and built-in defaults use it.
func MustCompile(kind config.ListKind, text string) *List {
	l, err := ForConfig(nil).Compile(kind, config.NewValue(text, config.Pos{File: "list"}))
	if err != nil {
		panic(err)
	}
	return l
}

func errorf(pos config.Pos, format string, args ...any) error {
	return &config.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// errBroken is the error of a reference to a named list that has errors of
// its own, reported already.
var errBroken = errors.New("named list with errors")

func (c *Compiler) namedList(name string) (*List, error) {
	n := c.named
	if l, ok := n.lists[name]; ok {
		return l, nil
	}
	if n.broken[name] {
		return nil, errBroken
	}
	def := n.defs[name]
	if c.busy[name] {
		return nil, errorf(def.Pos, "list %q refers to itself", name)
	}
	if c.busy == nil {
		// Compiling at run time (an expanded list): every named list was
		// compiled at load time, so this one has errors.
		return nil, errBroken
	}
	c.busy[name] = true
	l, err := c.Compile(def.Kind, def.Value)
	delete(c.busy, name)
	if err != nil {
		n.broken[name] = true
		return nil, err
	}
	n.lists[name] = l
	return l, nil
}

func (c *Compiler) item(kind config.ListKind, text string, pos config.Pos) (*item, error) {
	if name, ok := strings.CutPrefix(text, "+"); ok && name != "" {
		return c.reference(kind, name, pos)
	}
	switch kind {
	case config.DomainList:
		return domainItem(text, pos)
	case config.HostList:
		return hostItem(text, pos)
	case config.AddressList:
		return addressItem(text, pos)
	case config.LocalPartList:
		return localPartItem(text, pos)
	}
	return nil, errorf(pos, "unknown list kind %q", kind)
}

func (c *Compiler) reference(kind config.ListKind, name string, pos config.Pos) (*item, error) {
	def := c.named.defs[name]
	if def == nil {
		var names []string
		for n, d := range c.named.defs {
			if d.Kind == kind {
				names = append(names, n)
			}
		}
		return nil, errorf(pos, "no %s named %q is defined%s", kind, name, suggest.Hint(name, "+", names))
	}
	if def.Kind != kind {
		return nil, errorf(pos, "+%s is a %s (defined at %s), but a %s is needed here", name, def.Kind, def.Pos, kind)
	}
	if c.busy[name] {
		return nil, errorf(pos, "list %q refers to itself", name)
	}
	sub, err := c.namedList(name)
	if errors.Is(err, errBroken) {
		// Its errors are reported where it is defined; the
		// configuration is invalid anyway.
		return &item{kind: itemList, sub: &List{kind: kind}}, nil
	}
	if err != nil {
		return nil, err
	}
	return &item{kind: itemList, sub: sub}, nil
}

// domainItem: "*", "^regex", "*suffix", "@" (the primary host name), or a
// domain compared case-insensitively. Empty items mean nothing.
func domainItem(text string, pos config.Pos) (*item, error) {
	if it, done, err := patternItem(text, pos); done {
		return it, err
	}
	switch {
	case text == "@":
		return &item{kind: itemPrimary}, nil
	case strings.ContainsAny(text, ";@ \t") || hasControl(text):
		return nil, errorf(pos, "domain list item %q is not supported: use a domain, *.suffix, ^regex, @ or +listname", text)
	}
	name := strings.ToLower(strings.TrimSuffix(text, "."))
	if err := checkName(name); err != nil {
		return nil, errorf(pos, "domain %q: %v", text, err)
	}
	return &item{kind: itemName, text: name}, nil
}

// checkName accepts names of 1 to 253 octets made of labels of 1 to 63.
// Other characters than letters, digits and "-" are left alone: "_" is
// common in host names, and IDNs may be written in UTF-8.
func checkName(name string) error {
	if len(name) > 253 {
		return errors.New("longer than 253 octets")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label (two dots in a row, or a leading dot: write *.domain for subdomains)")
		}
		if len(label) > 63 {
			return errors.New("label longer than 63 octets")
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hostItem: "*", "" (local submission), an IP address or CIDR network, or
// a host name pattern (a domain item) matched against the host's name.
func hostItem(text string, pos config.Pos) (*item, error) {
	switch {
	case text == "*":
		return &item{kind: itemAny}, nil
	case text == "":
		return &item{kind: itemEmpty}, nil
	}
	if p, err := config.ParsePrefix(text); err == nil {
		return &item{kind: itemNet, net: p}, nil
	} else if looksLikeAddress(text) {
		return nil, errorf(pos, "%v (in a colon-separated list, write IPv6 addresses in a list starting with \"<;\")", err)
	}
	if text == "@" || strings.HasPrefix(text, "@[") || strings.Contains(text, ";") {
		return nil, errorf(pos, "host list item %q is not supported: use *, an IP address, a CIDR network, a host name pattern or +listname", text)
	}
	return domainItem(text, pos)
}

func looksLikeAddress(s string) bool {
	s, _, _ = strings.Cut(s, "/")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == ':' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')) {
			return false
		}
	}
	return strings.Count(s, ".") == 3 || strings.Contains(s, ":")
}

// addressItem: "*", "" (the null sender), "^regex" on the whole address,
// "local@domain" with a local-part item before the @ (empty: any) and a
// domain item after it, or a domain item alone, matched against the
// domain of the address.
func addressItem(text string, pos config.Pos) (*item, error) {
	switch {
	case text == "*":
		return &item{kind: itemAny}, nil
	case text == "":
		return &item{kind: itemEmpty}, nil
	case strings.HasPrefix(text, "^"):
		return regexItem(text, pos)
	}
	i := strings.LastIndexByte(text, '@')
	if i < 0 {
		return domainItem(text, pos)
	}
	lp, err := localPartItem(text[:i], pos)
	if err != nil {
		return nil, err
	}
	at := pos
	at.Col += i + 1
	dom, err := domainItem(text[i+1:], at)
	if err != nil {
		return nil, err
	}
	if dom == nil {
		return nil, errorf(at, "address list item %q has no domain after @", text)
	}
	return &item{kind: itemAddress, local: lp, domain: dom}, nil
}

// localPartItem: "*", "^regex", "*suffix", "prefix*", or a local part
// compared case-insensitively. Empty items mean nothing.
func localPartItem(text string, pos config.Pos) (*item, error) {
	if it, done, err := patternItem(text, pos); done {
		return it, err
	}
	if strings.HasSuffix(text, "*") {
		return &item{kind: itemPrefix, text: text[:len(text)-1]}, nil
	}
	return &item{kind: itemLocalPart, text: text}, nil
}

// patternItem compiles the items domain and local-part lists share: ""
// (nothing), "*", "^regex" and "*suffix". done is false for other text.
func patternItem(text string, pos config.Pos) (it *item, done bool, err error) {
	switch {
	case text == "":
		return nil, true, nil
	case text == "*":
		return &item{kind: itemAny}, true, nil
	case strings.HasPrefix(text, "^"):
		it, err := regexItem(text, pos)
		return it, true, err
	case strings.HasPrefix(text, "*"):
		return &item{kind: itemSuffix, text: text[1:]}, true, nil
	}
	return nil, false, nil
}

// regexItem compiles "^regex", case-insensitively. An error says how to
// write what was probably meant.
func regexItem(text string, pos config.Pos) (*item, error) {
	re, err := regexp.Compile("(?i)" + text)
	if err != nil {
		hint := ""
		var se *syntax.Error
		if errors.As(err, &se) {
			hint = regexHint(se.Code)
		}
		// The error quotes the expression compiled, "(?i)" included.
		msg := strings.Replace(err.Error(), "`(?i)", "`", 1)
		return nil, errorf(pos, "bad regular expression %q: %s%s", text, msg, hint)
	}
	return &item{kind: itemRegex, re: re}, nil
}

func regexHint(code syntax.ErrorCode) string {
	switch code {
	case syntax.ErrMissingBracket:
		return `: did you mean "\[" (a literal "[")?`
	case syntax.ErrMissingParen:
		return `: did you mean "\(" (a literal "(")?`
	case syntax.ErrUnexpectedParen:
		return `: did you mean "\)" (a literal ")")?`
	case syntax.ErrMissingRepeatArgument:
		return `: write "\*", "\+" or "\?" for a literal character`
	case syntax.ErrInvalidPerlOp:
		return " (Go's RE2 syntax has no look-ahead or look-behind)"
	case syntax.ErrInvalidEscape:
		return " (Go's RE2 syntax has no back-references; write \"\\\\\" for a literal backslash)"
	}
	return ""
}
