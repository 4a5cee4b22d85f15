package acl

import (
	"context"
	"testing"
)

func TestListMatching(t *testing.T) {
	lists := `domainlist local_domains = example.org : *.example.net : ^mail[0-9]+\.example\.com$
hostlist relay_hosts = <; 192.0.2.0/24 ; 2001:db8::/32 ; !198.51.100.7 ; 198.51.100.0/24
addresslist bad_senders = spammer@*.example.com : *@bad.example : ^bounce-.*@ : :
localpartlist admins = postmaster : abuse : *-request : owner-*
`
	tests := []struct {
		name   string
		cond   string
		ip     string
		sender string
		rcpt   string
		auth   string
		host   string
		want   bool
	}{
		{"domain literal", "domains = +local_domains", "", "", "u@EXAMPLE.org", "", "", true},
		{"domain suffix", "domains = +local_domains", "", "", "u@a.b.example.net", "", "", true},
		{"domain suffix needs the dot", "domains = +local_domains", "", "", "u@example.net", "", "", false},
		{"domain regex", "domains = +local_domains", "", "", "u@mail12.example.com", "", "", true},
		{"domain regex anchored", "domains = +local_domains", "", "", "u@xmail12.example.com", "", "", false},
		{"domain star", "domains = *", "", "", "u@x.y", "", "", true},
		{"domain negation first match wins", "domains = !example.org : *", "", "", "u@example.org", "", "", false},
		{"trailing negation means everything else", "domains = !example.org", "", "", "u@other.org", "", "", true},
		{"trailing negation excludes", "domains = !example.org", "", "", "u@example.org", "", "", false},
		{"host cidr v4", "hosts = +relay_hosts", "192.0.2.55", "", "", "", "", true},
		{"host cidr v6", "hosts = +relay_hosts", "2001:db8:1::5", "", "", "", "", true},
		{"host v4-mapped", "hosts = +relay_hosts", "::ffff:192.0.2.9", "", "", "", "", true},
		{"host negated before wider net", "hosts = +relay_hosts", "198.51.100.7", "", "", "", "", false},
		{"host in wider net", "hosts = +relay_hosts", "198.51.100.8", "", "", "", "", true},
		{"host not listed", "hosts = +relay_hosts", "203.0.113.1", "", "", "", "", false},
		{"empty host matches local submission", "hosts = :", "", "", "", "", "", true},
		{"empty host does not match remote", "hosts = :", "192.0.2.1", "", "", "", "", false},
		{"host name pattern", "hosts = *.relay.example", "192.0.2.1", "", "", "", "mx1.relay.example", true},
		{"host name pattern without a name", "hosts = *.relay.example", "192.0.2.1", "", "", "", "", false},
		{"negated named list", "hosts = !+relay_hosts", "203.0.113.1", "", "", "", "", true},
		{"sender local@*.domain", "senders = +bad_senders", "", "spammer@x.example.com", "", "", "", true},
		{"sender *@domain", "senders = +bad_senders", "", "anyone@bad.example", "", "", "", true},
		{"sender regex", "senders = +bad_senders", "", "bounce-123@x.org", "", "", "", true},
		{"null sender matches empty item", "senders = +bad_senders", "", "", "", "", "", true},
		{"sender not listed", "senders = +bad_senders", "", "alice@example.org", "", "", "", false},
		{"senders domain-only item", "senders = example.org", "", "Alice@Example.ORG", "", "", "", true},
		{"sender_domains", "sender_domains = *.example.com", "", "a@b.example.com", "", "", "", true},
		{"local_parts literal", "local_parts = +admins", "", "", "Postmaster@x", "", "", true},
		{"local_parts suffix", "local_parts = +admins", "", "", "list-request@x", "", "", true},
		{"local_parts prefix", "local_parts = +admins", "", "", "owner-list@x", "", "", true},
		{"local_parts miss", "local_parts = +admins", "", "", "alice@x", "", "", false},
		{"recipients", "recipients = alice@example.org : *@example.net", "", "", "bob@example.net", "", "", true},
		{"authenticated any", "authenticated = *", "", "", "", "alice", "", true},
		{"authenticated none", "authenticated = *", "", "", "", "", "", false},
		{"authenticated list", "authenticated = bob : carol", "", "", "", "alice", "", false},
		{"expanded list", "domains = ${lc:EXAMPLE.ORG} : x", "", "", "u@example.org", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, lists+"acl_smtp_rcpt = r\nbegin acl\nr:\n  accept "+tt.cond+"\n  deny\n", nil)
			txn := newTxn(tt.ip)
			txn.HasSender, txn.Sender, txn.Rcpt = true, tt.sender, tt.rcpt
			txn.Conn.AuthID, txn.Conn.ClientName = tt.auth, tt.host
			res := p.Run(context.Background(), Rcpt, txn)
			if res.Err != nil {
				t.Fatalf("error: %v", res.Err)
			}
			if got := res.Verb == Accept; got != tt.want {
				t.Errorf("%s: matched = %v, want %v", tt.cond, got, tt.want)
			}
		})
	}
}

// Controls keep each name once, the last argument set, and forget a
// deleted one.
func TestControlsList(t *testing.T) {
	var cs Controls
	cs.Set("a", "1")
	cs.Set("b", "")
	cs.Set("a", "2")
	if v, ok := cs.Get("a"); !ok || v != "2" || len(cs) != 2 {
		t.Errorf("a = %q %v in %v", v, ok, cs)
	}
	cs.Delete("a")
	if _, ok := cs.Get("a"); ok || len(cs) != 1 {
		t.Errorf("a still set: %v", cs)
	}
	if v, ok := cs.Get("b"); !ok || v != "" {
		t.Errorf("b = %q %v", v, ok)
	}
	cs.Delete("missing")
	if len(cs) != 1 {
		t.Errorf("deleting a missing control changed %v", cs)
	}
}
