package checks_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// A configuration using SPF the Exim way, run against a fake DNS zone.
func Example() {
	const conf = `
spf_received_header = true

acl_smtp_rcpt = check_rcpt
acl_smtp_data = check_data

begin acl

check_rcpt:
  deny    spf       = fail
          message   = $spf_smtp_comment
  defer   spf       = temperror
          message   = temporary SPF failure, try again later
  warn    spf_guess = !pass
          logwrite  = SPF $spf_result for $spf_used_domain (guessed: $spf_result_guessed)
  accept

check_data:
  accept
`
	zone := dnstest.NewZone().AddRecord(
		resolver.Record{Name: "example.com", Type: resolver.TypeTXT, TXT: []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		resolver.Record{Name: "nospf.example", Type: resolver.TypeA, IP: netip.MustParseAddr("198.51.100.7")},
	)
	cfg, err := config.Load("sidecar.conf", []byte(conf))
	reg := acl.NewRegistry()
	checks.Register(reg)
	var prog *acl.Program
	if err == nil {
		prog, err = acl.Compile(cfg, reg)
	}
	if err != nil {
		fmt.Println(config.AsList(err).Format())
		return
	}
	for _, s := range []struct{ client, sender string }{
		{"192.0.2.25", "alice@example.com"},
		{"203.0.113.9", "alice@example.com"},
		{"203.0.113.20", "bob@nospf.example"},
	} {
		conn := &acl.Conn{ClientIP: netip.MustParseAddr(s.client), Helo: "client.example"}
		txn := acl.NewTxn(conn, &acl.Services{DNS: zone, PrimaryHostname: "mx.example.net"})
		txn.HasSender, txn.Sender = true, s.sender
		res := prog.Run(context.Background(), acl.Rcpt, txn)
		fmt.Printf("%s from %s: %s\n", s.sender, s.client, strings.TrimSpace(string(res.Verb)+" "+res.Message))
		for _, l := range txn.Logs {
			fmt.Println("  log:", l.Text)
		}
		if res.Verb != acl.Accept {
			continue
		}
		prog.Run(context.Background(), acl.Data, txn)
		for _, ar := range txn.AuthResults {
			fmt.Printf("  Authentication-Results: %s=%s smtp.%s=%s\n", ar.Method, ar.Result, ar.Props[0].Name, ar.Props[0].Value)
		}
		for _, h := range txn.AddHeaders {
			first, _, _ := strings.Cut(h.Text, "\r\n")
			fmt.Printf("  %s (+%d folded lines)\n", first, strings.Count(h.Text, "\r\n"))
		}
	}
	// Output:
	// alice@example.com from 192.0.2.25: accept
	//   Authentication-Results: spf=pass smtp.mailfrom=example.com
	//   Received-SPF: pass (mx.example.net: 192.0.2.25 is authorized to use (+4 folded lines)
	// alice@example.com from 203.0.113.9: deny SPF fail: example.com does not permit 203.0.113.9 to send mail as 'alice@example.com' (reason: mechanism '-all' matched); see https://www.open-spf.org/Why
	// bob@nospf.example from 203.0.113.20: accept
	//   log: SPF neutral for nospf.example (guessed: yes)
	//   Authentication-Results: spf=none smtp.mailfrom=nospf.example
	//   Received-SPF: none (mx.example.net: no SPF record found for (+3 folded lines)
}
