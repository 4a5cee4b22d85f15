package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

// listMatcher matches one list item against a subject.
type listMatcher func(t *Txn, subject string) (bool, error)

type listItem struct {
	neg   bool
	match listMatcher
}

// List is a compiled Exim list. Items are tried left to right; the first
// that matches decides (a negated item means "not in the list"). When none
// matches, the subject is not in the list, unless the last item was
// negated, in which case it is.
type List struct {
	kind  config.ListKind
	items []listItem
}

// Match reports whether subject is in the list.
func (l *List) Match(t *Txn, subject string) (bool, error) {
	for _, it := range l.items {
		ok, err := it.match(t, subject)
		if err != nil {
			return false, err
		}
		if ok {
			return !it.neg, nil
		}
	}
	return len(l.items) > 0 && l.items[len(l.items)-1].neg, nil
}

// listCompiler compiles lists, resolving +name references to the named
// lists of the configuration.
type listCompiler struct {
	cfg     *config.Config
	named   map[string]*List
	busy    map[string]bool
	primary string
}

func (lc *listCompiler) compile(kind config.ListKind, v config.Value) (*List, error) {
	l := &List{kind: kind}
	for _, it := range config.SplitList(v) {
		text := it.Text
		neg := false
		for strings.HasPrefix(text, "!") {
			neg = !neg
			text = strings.TrimLeft(text[1:], " \t")
		}
		m, err := lc.item(kind, text, it.Pos)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		l.items = append(l.items, listItem{neg: neg, match: m})
	}
	return l, nil
}

func (lc *listCompiler) namedList(kind config.ListKind, name string, pos config.Pos) (*List, error) {
	if l, ok := lc.named[name]; ok {
		return l, nil
	}
	def := lc.cfg.Lists[name]
	if def == nil {
		var names []string
		for n, d := range lc.cfg.Lists {
			if d.Kind == kind {
				names = append(names, n)
			}
		}
		return nil, &posError{pos, fmt.Sprintf("no %s named %q is defined%s", kind, name, suggest.Hint(name, "+", names))}
	}
	if def.Kind != kind {
		return nil, &posError{pos, fmt.Sprintf("+%s is a %s (defined at %s), but a %s is needed here", name, def.Kind, def.Pos, kind)}
	}
	if lc.busy[name] {
		return nil, &posError{pos, fmt.Sprintf("list %q refers to itself", name)}
	}
	lc.busy[name] = true
	l, err := lc.compile(kind, def.Value)
	delete(lc.busy, name)
	if err != nil {
		return nil, err
	}
	lc.named[name] = l
	return l, nil
}

func (lc *listCompiler) item(kind config.ListKind, text string, pos config.Pos) (listMatcher, error) {
	if name, ok := strings.CutPrefix(text, "+"); ok && name != "" {
		l, err := lc.namedList(kind, name, pos)
		if err != nil {
			return nil, err
		}
		return func(t *Txn, s string) (bool, error) { return l.Match(t, s) }, nil
	}
	switch kind {
	case config.DomainList:
		return domainItem(text, pos, lc.primary)
	case config.HostList:
		return hostItem(text, pos)
	case config.AddressList:
		return addressItem(text, pos, lc.primary)
	case config.LocalPartList:
		return localPartItem(text, pos)
	}
	return nil, &posError{pos, "unknown list kind"}
}

func compileRegex(text string, pos config.Pos) (*regexp.Regexp, error) {
	re, err := regexp.Compile("(?i)" + text)
	if err != nil {
		return nil, &posError{pos, fmt.Sprintf("bad regular expression %q: %v", text, err)}
	}
	return re, nil
}

// domainItem: "*", "^regex", "*suffix", "@" (primary_hostname), or a
// domain compared case-insensitively.
func domainItem(text string, pos config.Pos, primary string) (listMatcher, error) {
	switch {
	case text == "":
		return nil, nil // empty items mean nothing in domain lists
	case text == "*":
		return func(*Txn, string) (bool, error) { return true, nil }, nil
	case strings.HasPrefix(text, "^"):
		re, err := compileRegex(text, pos)
		if err != nil {
			return nil, err
		}
		return func(_ *Txn, s string) (bool, error) { return re.MatchString(s), nil }, nil
	case strings.HasPrefix(text, "*"):
		suffix := strings.ToLower(text[1:])
		return func(_ *Txn, s string) (bool, error) { return hasSuffixFold(s, suffix), nil }, nil
	case text == "@":
		return func(t *Txn, s string) (bool, error) {
			return strings.EqualFold(s, t.Services.PrimaryHostname), nil
		}, nil
	case strings.ContainsAny(text, ";@ \t"):
		return nil, &posError{pos, fmt.Sprintf("domain list item %q is not supported: use a domain, *.suffix, ^regex, @ or +listname", text)}
	}
	d := strings.ToLower(strings.TrimSuffix(text, "."))
	return func(_ *Txn, s string) (bool, error) { return strings.EqualFold(strings.TrimSuffix(s, "."), d), nil }, nil
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// hostItem: "*", "" (the empty host: local submission), an IP address or
// CIDR network, or a host name pattern (matched against the client host
// name the MTA verified).
func hostItem(text string, pos config.Pos) (listMatcher, error) {
	switch {
	case text == "*":
		return func(*Txn, string) (bool, error) { return true, nil }, nil
	case text == "":
		return func(t *Txn, _ string) (bool, error) { return !t.Conn.ClientIP.IsValid(), nil }, nil
	}
	if p, err := config.ParsePrefix(text); err == nil {
		return func(t *Txn, _ string) (bool, error) {
			ip := t.Conn.ClientIP
			return ip.IsValid() && p.Contains(ip.Unmap()), nil
		}, nil
	} else if looksLikeAddress(text) {
		return nil, &posError{pos, fmt.Sprintf("%v (in a colon-separated list, write IPv6 addresses in a list starting with \"<;\")", err)}
	}
	if text == "@" || strings.HasPrefix(text, "@[") || strings.Contains(text, ";") {
		return nil, &posError{pos, fmt.Sprintf("host list item %q is not supported: use *, an IP address, a CIDR network, a host name pattern or +listname", text)}
	}
	name, err := domainItem(text, pos, "")
	if err != nil {
		return nil, err
	}
	return func(t *Txn, _ string) (bool, error) {
		if t.Conn.ClientName == "" {
			return false, nil
		}
		return name(t, t.Conn.ClientName)
	}, nil
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
// "local@domain" with "*" wildcards in the local part and a domain item
// after the @, or a domain item alone, matched against the domain.
func addressItem(text string, pos config.Pos, primary string) (listMatcher, error) {
	switch {
	case text == "*":
		return func(*Txn, string) (bool, error) { return true, nil }, nil
	case text == "":
		return func(_ *Txn, s string) (bool, error) { return s == "", nil }, nil
	case strings.HasPrefix(text, "^"):
		re, err := compileRegex(text, pos)
		if err != nil {
			return nil, err
		}
		return func(_ *Txn, s string) (bool, error) { return re.MatchString(s), nil }, nil
	}
	if i := strings.LastIndexByte(text, '@'); i >= 0 {
		lp, err := localPartItem(text[:i], pos)
		if err != nil {
			return nil, err
		}
		if lp == nil { // "@domain": any local part
			lp = func(*Txn, string) (bool, error) { return true, nil }
		}
		dom, err := domainItem(text[i+1:], pos, primary)
		if err != nil {
			return nil, err
		}
		if dom == nil {
			return nil, &posError{pos, fmt.Sprintf("address list item %q has no domain after @", text)}
		}
		return func(t *Txn, s string) (bool, error) {
			j := strings.LastIndexByte(s, '@')
			if j < 0 {
				return false, nil
			}
			ok, err := lp(t, s[:j])
			if !ok || err != nil {
				return ok, err
			}
			return dom(t, s[j+1:])
		}, nil
	}
	dom, err := domainItem(text, pos, primary)
	if err != nil || dom == nil {
		return dom, err
	}
	return func(t *Txn, s string) (bool, error) {
		if s == "" {
			return false, nil
		}
		return dom(t, domainOf(s))
	}, nil
}

// localPartItem: "*", "^regex", "*suffix", "prefix*", or a local part
// compared case-insensitively.
func localPartItem(text string, pos config.Pos) (listMatcher, error) {
	switch {
	case text == "":
		return nil, nil
	case text == "*":
		return func(*Txn, string) (bool, error) { return true, nil }, nil
	case strings.HasPrefix(text, "^"):
		re, err := compileRegex(text, pos)
		if err != nil {
			return nil, err
		}
		return func(_ *Txn, s string) (bool, error) { return re.MatchString(s), nil }, nil
	case strings.HasPrefix(text, "*"):
		suffix := text[1:]
		return func(_ *Txn, s string) (bool, error) { return hasSuffixFold(s, suffix), nil }, nil
	case strings.HasSuffix(text, "*"):
		prefix := text[:len(text)-1]
		return func(_ *Txn, s string) (bool, error) {
			return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix), nil
		}, nil
	}
	return func(_ *Txn, s string) (bool, error) { return strings.EqualFold(s, text), nil }, nil
}

// ipOf is the client address for host lists.
func ipOf(t *Txn) netip.Addr { return t.Conn.ClientIP }

// CompileList compiles a list-valued main option (a domain or host list
// written in the main section) of cfg, resolving +name references to its
// named lists. Errors carry the option's position.
func CompileList(cfg *config.Config, kind config.ListKind, v config.Value) (*List, error) {
	lc := &listCompiler{cfg: cfg, named: map[string]*List{}, busy: map[string]bool{}, primary: cfg.String("primary_hostname")}
	l, err := lc.compile(kind, v)
	if err != nil {
		var pe *posError
		if errors.As(err, &pe) {
			e := &config.Error{Pos: pe.pos, Msg: pe.msg}
			if cfg.Reporter != nil {
				e.Source = cfg.Reporter.Source(pe.pos.File, pe.pos.Line)
			}
			return nil, config.ErrorList{e}
		}
		return nil, err
	}
	return l, nil
}

// Len returns the number of items of the list.
func (l *List) Len() int { return len(l.items) }
