package tlspolicy

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/mailsidecar/sidecar/config"
)

// List is a compiled Exim-style domain or host list, matched against a
// host or domain name and, for host lists, its addresses. Items: "*",
// "^regex", "*suffix", "+named_list", a name, and in host lists an IP
// address or CIDR network; "!" negates an item. The first matching item
// decides; when none matches the subject is not in the list, unless the
// last item is negated. A nil List is empty.
type List struct {
	items []listItem
	text  string
}

type listItem struct {
	neg    bool
	any    bool
	re     *regexp.Regexp
	suffix string
	name   string
	prefix netip.Prefix
	sub    *List
}

// Empty reports whether the list has no items.
func (l *List) Empty() bool { return l == nil || len(l.items) == 0 }

func (l *List) String() string {
	if l == nil {
		return ""
	}
	return l.text
}

// Match reports whether name (or one of addrs, for address items) is in
// the list.
func (l *List) Match(name string, addrs []netip.Addr) bool {
	if l.Empty() {
		return false
	}
	for _, it := range l.items {
		if it.match(name, addrs) {
			return !it.neg
		}
	}
	return l.items[len(l.items)-1].neg
}

func (it *listItem) match(name string, addrs []netip.Addr) bool {
	switch {
	case it.any:
		return true
	case it.sub != nil:
		return it.sub.Match(name, addrs)
	case it.re != nil:
		return name != "" && it.re.MatchString(name)
	case it.prefix.IsValid():
		for _, a := range addrs {
			if it.prefix.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	case it.suffix != "":
		return name != "" && strings.HasSuffix(name, it.suffix)
	}
	return name != "" && name == it.name
}

// CompileList compiles the list value v. hostList allows address items;
// named lists (+name) are taken from cfg, which may be nil.
func CompileList(cfg *config.Config, v config.Value, hostList bool) (*List, error) {
	return compileList(cfg, v, hostList, map[string]bool{})
}

func compileList(cfg *config.Config, v config.Value, hostList bool, busy map[string]bool) (*List, error) {
	l := &List{text: v.Text}
	for _, item := range config.SplitList(v) {
		text := item.Text
		it := listItem{}
		for strings.HasPrefix(text, "!") {
			it.neg = !it.neg
			text = strings.TrimLeft(text[1:], " \t")
		}
		switch {
		case text == "":
			continue
		case text == "*":
			it.any = true
		case strings.HasPrefix(text, "+") && len(text) > 1:
			name := text[1:]
			var def *config.ListDef
			if cfg != nil {
				def = cfg.Lists[name]
			}
			want := config.DomainList
			if hostList {
				want = config.HostList
			}
			if def == nil || def.Kind != want {
				return nil, fmt.Errorf("%s: no %s named %q", item.Pos, want, name)
			}
			if busy[name] {
				return nil, fmt.Errorf("%s: list %q refers to itself", item.Pos, name)
			}
			busy[name] = true
			sub, err := compileList(cfg, def.Value, hostList, busy)
			delete(busy, name)
			if err != nil {
				return nil, err
			}
			it.sub = sub
		case strings.HasPrefix(text, "^"):
			re, err := regexp.Compile("(?i)" + text)
			if err != nil {
				return nil, fmt.Errorf("%s: bad regular expression %q: %v", item.Pos, text, err)
			}
			it.re = re
		case strings.HasPrefix(text, "*"):
			it.suffix = strings.ToLower(text[1:])
		default:
			if hostList {
				if p, err := config.ParsePrefix(text); err == nil {
					it.prefix = p
					break
				}
			}
			it.name = strings.ToLower(strings.TrimSuffix(text, "."))
			if err := checkHostName(it.name); err != nil {
				return nil, fmt.Errorf("%s: list item %q: %v", item.Pos, text, err)
			}
		}
		l.items = append(l.items, it)
	}
	return l, nil
}

// MustList compiles a list without named lists; it panics on an error.
// Tests and defaults use it.
func MustList(text string, hostList bool) *List {
	l, err := CompileList(nil, config.NewValue(text, config.Pos{File: "list"}), hostList)
	if err != nil {
		panic(err)
	}
	return l
}
