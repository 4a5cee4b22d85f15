package acl

import (
	"net/netip"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/eximlist"
)

// List is a compiled Exim list (package eximlist) matched against the
// subjects of a transaction.
type List struct {
	list *eximlist.List
}

// Match reports whether subject is in the list. Host lists look at the
// client instead: its address, the host name the MTA verified, and
// whether it is a local submission (no address). "@" is the primary host
// name of the transaction's services.
func (l *List) Match(t *Txn, subject string) (bool, error) {
	s := eximlist.Subject{Name: subject, Primary: t.Services.PrimaryHostname}
	if l.list.Kind() == config.HostList {
		s.Name = t.Conn.ClientName
		if ip := t.Conn.ClientIP; ip.IsValid() {
			s.Addrs = []netip.Addr{ip} // only host lists pay for it
		} else {
			s.Local = true
		}
	}
	return l.list.Match(&s), nil
}

// Len returns the number of items of the list.
func (l *List) Len() int { return l.list.Len() }

// CompileList compiles a list-valued main option (a domain or host list
// written in the main section) of cfg, resolving +name references to its
// named lists. Errors carry the option's position.
func CompileList(cfg *config.Config, kind config.ListKind, v config.Value) (*List, error) {
	l, err := eximlist.ForConfig(cfg).Compile(kind, v)
	if err != nil {
		list := config.AsList(err)
		if cfg.Reporter != nil {
			for _, e := range list {
				if e.Source == "" {
					e.Source = cfg.Reporter.Source(e.Pos.File, e.Pos.Line)
				}
			}
		}
		return nil, list
	}
	return &List{list: l}, nil
}
