package tlspolicy

import (
	"net/netip"
	"os"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/eximlist"
)

// List is a compiled Exim domain or host list (package eximlist), matched
// against a next-hop domain, or an MX host's name and addresses. "@" is
// the primary host name. A nil List is empty.
type List struct {
	list    *eximlist.List
	primary string
}

// Empty reports whether the list has no items.
func (l *List) Empty() bool { return l == nil || l.list.Empty() }

func (l *List) String() string {
	if l == nil {
		return ""
	}
	return l.list.String()
}

// Match reports whether name (or one of addrs, for address items) is in
// the list.
func (l *List) Match(name string, addrs []netip.Addr) bool {
	if l.Empty() {
		return false
	}
	return l.list.Match(&eximlist.Subject{Name: name, Addrs: addrs, Primary: l.primary})
}

// CompileList compiles the list value v. hostList allows address items;
// named lists (+name) are taken from cfg, which may be nil. The error is a
// *config.Error at the faulty item.
func CompileList(cfg *config.Config, v config.Value, hostList bool) (*List, error) {
	kind := config.DomainList
	if hostList {
		kind = config.HostList
	}
	l, err := eximlist.ForConfig(cfg).Compile(kind, v)
	if err != nil {
		return nil, err
	}
	out := &List{list: l}
	if cfg != nil {
		// "@" is the daemon's primary host name: the system's by default.
		if out.primary = cfg.String("primary_hostname"); out.primary == "" {
			out.primary, _ = os.Hostname()
		}
	}
	return out, nil
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
