package eximlist

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("load:\n%s", config.AsList(err).Format())
	}
	return cfg
}

func TestMatch(t *testing.T) {
	named := `domainlist local = example.org : *.example.net : ^mail[0-9]+\.example\.com$
hostlist relay = <; 192.0.2.0/24 ; 2001:db8::/32 ; !198.51.100.7 ; 198.51.100.0/24
addresslist bad = spammer@*.example.com : *@bad.example : ^bounce-.*@ : :
localpartlist admins = postmaster : abuse : *-request : owner-*
`
	cfg := load(t, named)
	c := ForConfig(cfg)
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	tests := []struct {
		name string
		kind config.ListKind
		list string
		subj Subject
		want bool
	}{
		{"domain literal, any case", config.DomainList, "+local", Subject{Name: "EXAMPLE.org"}, true},
		{"domain with a final dot", config.DomainList, "+local", Subject{Name: "example.org."}, true},
		{"domain suffix", config.DomainList, "+local", Subject{Name: "a.b.example.net"}, true},
		{"domain suffix needs the dot", config.DomainList, "+local", Subject{Name: "example.net"}, false},
		{"domain regex", config.DomainList, "+local", Subject{Name: "mail12.example.com"}, true},
		{"domain regex anchored", config.DomainList, "+local", Subject{Name: "xmail12.example.com"}, false},
		{"domain star", config.DomainList, "*", Subject{Name: "x.y"}, true},
		{"first match wins", config.DomainList, "!example.org : *", Subject{Name: "example.org"}, false},
		{"trailing negation: everything else", config.DomainList, "!example.org", Subject{Name: "other.org"}, true},
		{"trailing negation excludes", config.DomainList, "!example.org", Subject{Name: "example.org"}, false},
		{"@ is the primary host name", config.DomainList, "@", Subject{Name: "MX.example.net", Primary: "mx.example.net"}, true},
		{"@ without a primary name", config.DomainList, "@", Subject{Name: "mx.example.net"}, false},
		{"empty items mean nothing in domain lists", config.DomainList, "a.example : : !b.example", Subject{Name: "c.example"}, true},
		{"host cidr v4", config.HostList, "+relay", Subject{Addrs: ip("192.0.2.55")}, true},
		{"host cidr v6", config.HostList, "+relay", Subject{Addrs: ip("2001:db8:1::5")}, true},
		{"host v4-mapped", config.HostList, "+relay", Subject{Addrs: ip("::ffff:192.0.2.9")}, true},
		{"host negated before a wider net", config.HostList, "+relay", Subject{Addrs: ip("198.51.100.7")}, false},
		{"host in the wider net", config.HostList, "+relay", Subject{Addrs: ip("198.51.100.8")}, true},
		{"host not listed", config.HostList, "+relay", Subject{Addrs: ip("203.0.113.1")}, false},
		{"empty host: local submission", config.HostList, ":", Subject{Local: true}, true},
		{"empty host: not a remote host", config.HostList, ":", Subject{Addrs: ip("192.0.2.1")}, false},
		{"host name pattern", config.HostList, "*.relay.example", Subject{Name: "mx1.relay.example"}, true},
		{"host name pattern, no name", config.HostList, "*.relay.example", Subject{Addrs: ip("192.0.2.1")}, false},
		{"host regex needs a name", config.HostList, "^.*$", Subject{Addrs: ip("192.0.2.1")}, false},
		{"MX host by name or address", config.HostList, "!mx.bad.example : *.example : 192.0.2.0/24", Subject{Name: "other.org", Addrs: ip("192.0.2.9")}, true},
		{"negated named list", config.HostList, "!+relay", Subject{Addrs: ip("203.0.113.1")}, true},
		{"sender local@*.domain", config.AddressList, "+bad", Subject{Name: "spammer@x.example.com"}, true},
		{"sender *@domain", config.AddressList, "+bad", Subject{Name: "anyone@bad.example"}, true},
		{"sender regex", config.AddressList, "+bad", Subject{Name: "bounce-123@x.org"}, true},
		{"null sender matches the empty item", config.AddressList, "+bad", Subject{Name: ""}, true},
		{"sender not listed", config.AddressList, "+bad", Subject{Name: "alice@example.org"}, false},
		{"address: domain item alone", config.AddressList, "example.org", Subject{Name: "Alice@Example.ORG"}, true},
		{"address: @domain", config.AddressList, "@example.org", Subject{Name: "bob@example.org"}, true},
		{"address: no @", config.AddressList, "*@example.org", Subject{Name: "example.org"}, false},
		{"local part literal", config.LocalPartList, "+admins", Subject{Name: "Postmaster"}, true},
		{"local part keeps its final dot", config.LocalPartList, "abuse", Subject{Name: "abuse."}, false},
		{"local part suffix", config.LocalPartList, "+admins", Subject{Name: "list-request"}, true},
		{"local part prefix", config.LocalPartList, "+admins", Subject{Name: "owner-list"}, true},
		{"local part miss", config.LocalPartList, "+admins", Subject{Name: "alice"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := c.Compile(tt.kind, config.NewValue(tt.list, config.Pos{File: "t", Line: 1, Col: 1}))
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Match(&tt.subj); got != tt.want {
				t.Errorf("%s %q: Match(%+v) = %v, want %v", tt.kind, tt.list, tt.subj, got, tt.want)
			}
		})
	}
}

// TestErrors: every mistake is a load-time error at the faulty item, with
// a suggestion where one is known.
func TestErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown named list", "hostlist relay_hosts = 127.0.0.1\ndomainlist d = a.example : +relay_host",
			`test.conf:2:28: no domainlist named "relay_host" is defined`},
		{"suggestion", "domainlist local_domains = a.example\ndomainlist d = +local_domain",
			`test.conf:2:16: no domainlist named "local_domain" is defined: did you mean "+local_domains"?`},
		{"wrong kind", "domainlist d = x.example\nhostlist h = +d",
			`test.conf:2:14: +d is a domainlist (defined at test.conf:1:1), but a hostlist is needed here`},
		{"bad regex", "domainlist d = a.example : ^[x",
			"test.conf:1:28: bad regular expression \"^[x\": error parsing regexp: missing closing ]: `[x`: did you mean \"\\[\" (a literal \"[\")?"},
		{"position after !", "domainlist d = ! ^(x",
			"test.conf:1:18: bad regular expression \"^(x\": error parsing regexp: missing closing ): `^(x`: did you mean \"\\(\" (a literal \"(\")?"},
		{"ipv6 in a colon list", "hostlist h = 2001:db8::1",
			`test.conf:1:19: bad IP address "db8:1" (in a colon-separated list, write IPv6 addresses in a list starting with "<;")`},
		{"space in a domain", "domainlist d = exa mple.com", `test.conf:1:16: domain list item "exa mple.com" is not supported: use a domain, *.suffix, ^regex, @ or +listname`},
		{"empty label", "domainlist d = exa..mple.com", `test.conf:1:16: domain "exa..mple.com": empty label (two dots in a row, or a leading dot: write *.domain for subdomains)`},
		{"address without domain", "addresslist a = bob@", `test.conf:1:21: address list item "bob@" has no domain after @`},
		{"host @", "hostlist h = @", `test.conf:1:14: host list item "@" is not supported: use *, an IP address, a CIDR network, a host name pattern or +listname`},
		{"refers to itself", "domainlist d = x : +d", `test.conf:1:20: list "d" refers to itself`},
		{"loop of two", "domainlist a = +b\ndomainlist b = x : +a", `test.conf:2:20: list "a" refers to itself`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load("test.conf", []byte(tt.text))
			errs := config.AsList(err).Errors()
			if len(errs) != 1 || errs[0].Error() != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", errs.Error(), tt.want)
			}
			if len(errs) == 1 && errs[0].Source == "" {
				t.Errorf("no source line for the caret")
			}
		})
	}
}

// TestNamedListFanOutRefused: named lists that refer to each other 10
// deep, 10 times each, would make one match try 10^10 items; the list
// that passes MaxCost is refused where it does, once.
func TestNamedListFanOutRefused(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 10; i++ {
		refs := make([]string, 10)
		for j := range refs {
			refs[j] = fmt.Sprintf("+l%d", i+1)
		}
		fmt.Fprintf(&b, "domainlist l%d = %s\n", i, strings.Join(refs, " : "))
	}
	b.WriteString("domainlist l10 = a.example\n")
	_, err := config.Load("test.conf", []byte(b.String()))
	errs := config.AsList(err).Errors()
	// l4 reaches 10^6 items; the second +l4 of l3 passes 2^20.
	want := `test.conf:4:23: "+l4" makes a match try more than 1048576 items, through nested +name references: it would take too long`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("errors:\n%s\nwant:\n%s", errs.Error(), want)
	}
}

// TestRuntimeListCost: a list compiled when a string is expanded is bound
// by MaxCost too.
func TestRuntimeListCost(t *testing.T) {
	cfg, err := config.Load("test.conf", []byte("domainlist big = "+strings.Repeat("a.b:", 600_000)+"b.example\n"))
	if err != nil {
		t.Fatalf("load: %.200s", err)
	}
	c := ForConfig(cfg)
	if _, err := c.Compile(config.DomainList, config.NewValue("+big : +big", config.Pos{File: "t"})); err == nil {
		t.Fatal("a list of 1.2 million items compiled")
	}
	if l, err := c.Compile(config.DomainList, config.NewValue("+big", config.Pos{File: "t"})); err != nil || !l.Match(&Subject{Name: "b.example"}) {
		t.Fatalf("+big: %v", err)
	}
}

// TestBrokenNamedListReportedOnce: a named list with an error is reported
// where it is defined, not again at each reference.
func TestBrokenNamedListReportedOnce(t *testing.T) {
	_, err := config.Load("test.conf", []byte("domainlist bad = ^(\ndomainlist a = +bad\ndomainlist b = +bad : x.example\n"))
	errs := config.AsList(err).Errors()
	if len(errs) != 1 || errs[0].Pos.Line != 1 {
		t.Errorf("errors:\n%s", errs.Error())
	}
}

// TestConcurrentRuntimeCompile compiles lists that refer to named lists
// from many goroutines (run with -race): the named lists are only read.
func TestConcurrentRuntimeCompile(t *testing.T) {
	cfg := load(t, "domainlist a = x.example : +b\ndomainlist b = y.example\n")
	c := ForConfig(cfg)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				l, err := c.Compile(config.DomainList, config.NewValue("+a : +b", config.Pos{File: "t"}))
				if err != nil || !l.Match(&Subject{Name: "y.example"}) {
					t.Errorf("%v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestMustCompile(t *testing.T) {
	l := MustCompile(config.DomainList, "a.example : *.b.example")
	if l.Len() != 2 || l.String() != "a.example : *.b.example" || l.Kind() != config.DomainList || !l.Match(&Subject{Name: "x.b.example"}) {
		t.Errorf("list %+v", l)
	}
	var empty *List
	if !empty.Empty() || empty.Match(&Subject{Name: "x"}) {
		t.Error("a nil list is not empty")
	}
}
