package eximlist

import (
	"net/netip"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// FuzzCompileList compiles any list text as every kind of list and
// matches it: no panic, and an error always has a position.
func FuzzCompileList(f *testing.F) {
	for _, s := range []string{
		"example.org : *.example.net : ^mail[0-9]+\\.example\\.com$",
		"<; 192.0.2.0/24 ; 2001:db8::/32 ; !198.51.100.7 ; :",
		"spammer@*.example.com : *@bad.example : ^bounce-.*@ : :",
		"postmaster : *-request : owner-* : @ : ! ! x",
		"+named : ^[ : a..b : bob@",
	} {
		f.Add(s, "mx.example.org")
	}
	cfg, err := config.Load("fuzz.conf", []byte("domainlist named = a.example : +other\ndomainlist other = ^b\n"))
	if err != nil {
		f.Fatal(err)
	}
	c := ForConfig(cfg)
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	f.Fuzz(func(t *testing.T, text, subject string) {
		for _, kind := range []config.ListKind{config.DomainList, config.HostList, config.AddressList, config.LocalPartList} {
			l, err := c.Compile(kind, config.NewValue(text, config.Pos{File: "f", Line: 1, Col: 1}))
			if err != nil {
				if e, ok := err.(*config.Error); !ok || !e.Pos.IsValid() {
					t.Fatalf("%s %q: error without a position: %v", kind, text, err)
				}
				continue
			}
			l.Match(&Subject{Name: subject, Addrs: addrs, Primary: "mx.example.org"})
			l.Match(&Subject{Local: true})
		}
	})
}
