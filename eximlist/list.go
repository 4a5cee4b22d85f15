package eximlist

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/mailsidecar/sidecar/config"
)

// Subject is what one match of a list looks at.
type Subject struct {
	// Name is the domain (domain lists), the host name the MTA verified
	// or the MX host's name (host lists; "" when unknown), the address
	// (address lists; "" for the null sender) or the local part.
	Name string
	// Addrs are the host's addresses, for the address and network items
	// of host lists.
	Addrs []netip.Addr
	// Local is true for a local submission, which the empty item of a
	// host list matches ("hosts = :").
	Local bool
	// Primary is this host's name, which "@" stands for.
	Primary string
}

type itemKind uint8

const (
	itemAny       itemKind = iota // "*"
	itemEmpty                     // "": local submission (host lists), the null sender (address lists)
	itemName                      // a domain or host name, compared case-insensitively
	itemLocalPart                 // a local part, compared case-insensitively
	itemSuffix                    // "*suffix"
	itemPrefix                    // "prefix*" (local parts)
	itemRegex                     // "^regex", case-insensitive
	itemPrimary                   // "@": the primary host name
	itemNet                       // an IP address or CIDR network (host lists)
	itemList                      // "+name"
	itemAddress                   // "local@domain" (address lists)
)

type item struct {
	kind   itemKind
	neg    bool
	text   string // itemName (lower case, no final dot), itemLocalPart, itemSuffix, itemPrefix
	re     *regexp.Regexp
	net    netip.Prefix
	sub    *List
	local  *item // itemAddress: the local-part item; nil matches any
	domain *item // itemAddress: the domain item
}

// List is a compiled Exim list. Items are tried left to right; the first
// that matches decides (a negated item means "not in the list"). When none
// matches, the subject is not in the list, unless the last item was
// negated, in which case it is. A nil List is empty.
type List struct {
	kind  config.ListKind
	items []item
	text  string
	cost  int
}

// Kind returns the kind of the list.
func (l *List) Kind() config.ListKind { return l.kind }

// Len returns the number of items of the list (a +name item counts one).
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.items)
}

// Empty reports whether the list has no items.
func (l *List) Empty() bool { return l.Len() == 0 }

// String returns the list as written.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return l.text
}

// Match reports whether the subject is in the list.
func (l *List) Match(s *Subject) bool {
	if l.Empty() {
		return false
	}
	for i := range l.items {
		it := &l.items[i]
		if l.matchItem(it, s) {
			return !it.neg
		}
	}
	return l.items[len(l.items)-1].neg
}

func (l *List) matchItem(it *item, s *Subject) bool {
	switch it.kind {
	case itemAny:
		return true
	case itemList:
		return it.sub.Match(s)
	}
	switch l.kind {
	case config.HostList:
		switch it.kind {
		case itemEmpty:
			return s.Local
		case itemNet:
			for _, a := range s.Addrs {
				if it.net.Contains(a.Unmap()) {
					return true
				}
			}
			return false
		}
		// a host name pattern: the host must have a name
		return s.Name != "" && it.matchName(s.Name, s.Primary)
	case config.AddressList:
		switch it.kind {
		case itemEmpty:
			return s.Name == ""
		case itemRegex:
			return it.re.MatchString(s.Name)
		case itemAddress:
			j := strings.LastIndexByte(s.Name, '@')
			if j < 0 {
				return false
			}
			if it.local != nil && !it.local.matchName(s.Name[:j], s.Primary) {
				return false
			}
			return it.domain.matchName(s.Name[j+1:], s.Primary)
		}
		// a domain item alone: the address's domain
		if s.Name == "" {
			return false
		}
		dom := ""
		if j := strings.LastIndexByte(s.Name, '@'); j >= 0 {
			dom = s.Name[j+1:]
		}
		return it.matchName(dom, s.Primary)
	}
	return it.matchName(s.Name, s.Primary)
}

// matchName matches a name against a name, suffix, prefix, regex or "@"
// item.
func (it *item) matchName(name, primary string) bool {
	switch it.kind {
	case itemAny:
		return true
	case itemName:
		return strings.EqualFold(strings.TrimSuffix(name, "."), it.text)
	case itemLocalPart:
		return strings.EqualFold(name, it.text)
	case itemSuffix:
		return len(name) >= len(it.text) && strings.EqualFold(name[len(name)-len(it.text):], it.text)
	case itemPrefix:
		return len(name) >= len(it.text) && strings.EqualFold(name[:len(it.text)], it.text)
	case itemRegex:
		return it.re.MatchString(name)
	case itemPrimary:
		return primary != "" && strings.EqualFold(strings.TrimSuffix(name, "."), strings.TrimSuffix(primary, "."))
	}
	return false
}
