package config

import (
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, text string) (*Config, ErrorList) {
	t.Helper()
	c, err := Load("test.conf", []byte(text))
	return c, AsList(err)
}

func TestOptionsTyped(t *testing.T) {
	c, errs := load(t, `
authserv_id = mx.example.com
dns_timeout = 1m30s
dns_retries = 3
dns_cache_size = 2K
log_format = JSON
milter_listen = inet:127.0.0.1:10025 inet:8891@127.0.0.1 unix:/run/sidecar/milter.sock
dns_servers = 192.0.2.1, [2001:db8::53]:5353 127.0.0.1:5302
dns_trust_ad = <; 127.0.0.0/8 ; ::1 ; 192.0.2.1
`)
	if len(errs) != 0 {
		t.Fatalf("unexpected errors:\n%s", errs.Format())
	}
	if got := c.String("authserv_id"); got != "mx.example.com" {
		t.Errorf("authserv_id = %q", got)
	}
	if got := c.Duration("dns_timeout"); got != 90*time.Second {
		t.Errorf("dns_timeout = %v", got)
	}
	if got := c.Int("dns_cache_size"); got != 2048 {
		t.Errorf("dns_cache_size = %d", got)
	}
	if got := c.String("log_format"); got != "json" {
		t.Errorf("log_format = %q", got)
	}
	lis := c.Get("milter_listen").Lis
	want := []Listen{{"tcp", "127.0.0.1:10025"}, {"tcp", "127.0.0.1:8891"}, {"unix", "/run/sidecar/milter.sock"}}
	if len(lis) != len(want) {
		t.Fatalf("milter_listen = %v", lis)
	}
	for i := range want {
		if lis[i] != want[i] {
			t.Errorf("milter_listen[%d] = %v, want %v", i, lis[i], want[i])
		}
	}
	if got := strings.Join(c.Get("dns_servers").Addrs, " "); got != "192.0.2.1:53 [2001:db8::53]:5353 127.0.0.1:5302" {
		t.Errorf("dns_servers = %q", got)
	}
	if got := len(c.Get("dns_trust_ad").Nets); got != 3 {
		t.Errorf("dns_trust_ad has %d networks", got)
	}
	// defaults
	if got := c.Get("policy_listen").Lis[0].Address; got != "127.0.0.1:8895" {
		t.Errorf("policy_listen default = %q", got)
	}
	if c.Get("policy_listen").Set {
		t.Errorf("policy_listen reported as set")
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown", "authserv_idd = x", `test.conf:1:1: unknown option "authserv_idd": did you mean "authserv_id"?`},
		{"unknown no hint", "frobnicate = 1", `test.conf:1:1: unknown option "frobnicate"`},
		{"duration", "dns_timeout = 5x", `test.conf:1:15: dns_timeout: unknown time unit "x" in "5x": use s, m, h, d or w`},
		{"enum", "log_format = jsno", `test.conf:1:14: log_format must be one of text, json, found "jsno": did you mean "json"?`},
		{"range", "dns_retries = 99", `test.conf:1:15: dns_retries must be between 1 and 10, found 99`},
		{"port", "milter_listen = inet:127.0.0.1:99999", `test.conf:1:17: listener "inet:127.0.0.1:99999": bad port "99999"`},
		{"second listener", "milter_listen = inet:127.0.0.1:1 unix:relative", `test.conf:1:34: listener "unix:relative": the socket path must be absolute`},
		{"cidr", "dns_trust_ad = <; 127.0.0.1 ; 10.0.0.0/33", `test.conf:1:31: bad network "10.0.0.0/33": expected ADDRESS/BITS`},
		{"server", "dns_servers = 192.0.2.1 nope", `test.conf:1:25: bad DNS server "nope": expected an IP address, IP:PORT or [IPv6]:PORT`},
		{"needs value", "dns_cache_size", `test.conf:1:1: option "dns_cache_size" needs a value: dns_cache_size = …`},
		{"no_ on non-bool", "no_log_format", `test.conf:1:1: "no_" applies only to boolean options, and log_format is a choice`},
		{"acl name", "acl_smtp_rcpt = check_rcp\nbegin acl\ncheck_rcpt:\n accept", `test.conf:1:17: acl_smtp_rcpt names ACL "check_rcp", which is not defined after "begin acl": did you mean "check_rcpt"?`},
		{"garbage", "this line is wrong", `test.conf:1:6: expected "=" after option name "this", found "line"`},
		{"section", "begin routers", `test.conf:1:7: unknown section "routers": sidecar has only "begin acl"`},
		{"continuation", "authserv_id = a\\\n  b\ndns_timeout = \\\n   9q", `test.conf:4:4: dns_timeout: unknown time unit "q" in "9q": use s, m, h, d or w`},
		{"dup list", "domainlist a = x\ndomainlist a = y", `test.conf:2:1: list "a" is already defined at test.conf:1:1`},
		{"list name", "hostlist = 1.2.3.4", `test.conf:1:10: hostlist needs a name: hostlist NAME = item : item`},
		{"acl outside", "begin acl\n  accept", `test.conf:2:3: statement outside an ACL: start an ACL with a line "name:"`},
		{"no verb", "begin acl\nx:\n  hosts = *", `test.conf:3:3: expected an ACL verb (accept, defer, deny, discard, drop, require, warn), found "hosts"`},
		{"two equals", "begin acl\nx:\n  deny hosts == 1.2.3.4\n  warn hosts foo bar", `test.conf:4:18: expected "=" after "hosts foo", found "bar": write one "name = value" per line, and end a line with \ to continue a long value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := load(t, tt.text)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			for _, g := range got {
				if g == tt.want {
					return
				}
			}
			t.Errorf("errors = %q\nwant one of them to be %q", got, tt.want)
		})
	}
}

func TestFormatCaret(t *testing.T) {
	_, errs := load(t, "# comment\n\tlog_format = jsno\n")
	if len(errs) != 1 {
		t.Fatalf("got %d errors", len(errs))
	}
	want := "test.conf:2:15: log_format must be one of text, json, found \"jsno\": did you mean \"json\"?\n" +
		"     log_format = jsno\n" +
		"                  ^"
	if got := errs[0].Format(); got != want {
		t.Errorf("Format() =\n%s\nwant\n%s", got, want)
	}
}

func TestBooleans(t *testing.T) {
	RegisterOption(OptionDef{Name: "test_flag_option", Kind: KindBool, Default: "false"})
	for _, tt := range []struct {
		text string
		want bool
	}{{"test_flag_option", true}, {"no_test_flag_option", false}, {"not_test_flag_option", false},
		{"test_flag_option = yes", true}, {"test_flag_option = false", false}} {
		c, errs := load(t, tt.text)
		if len(errs) != 0 {
			t.Fatalf("%q: %s", tt.text, errs.Format())
		}
		if got := c.Bool("test_flag_option"); got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.text, got, tt.want)
		}
	}
	_, errs := load(t, "test_flag_option = maybe")
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "is a boolean") {
		t.Errorf("maybe: %v", errs)
	}
}

func TestDuplicateOptionWarns(t *testing.T) {
	c, errs := load(t, "dns_timeout = 1s\ndns_timeout = 3s")
	if len(errs) != 0 {
		t.Fatal(errs.Format())
	}
	if w := c.Reporter.List.Warnings(); len(w) != 1 || w[0].Pos.Line != 2 {
		t.Errorf("warnings = %v", w)
	}
	if c.Duration("dns_timeout") != 3*time.Second {
		t.Errorf("the later setting must win")
	}
}

func TestSeedDMARCExampleParses(t *testing.T) {
	// The statements of the DMARC "Example usage" of the seeds
	// (001_48bb758177c472e2.txt), as written.
	text := `begin acl
rcpt:
  warn    domains        = +local_domains
          hosts          = +local_hosts
          control        = dmarc_disable_verify

  warn    !domains       = +screwed_up_dmarc_records
          control        = dmarc_enable_forensic

  warn    condition      = (lookup if destined to mailing list)
          set acl_m_mailing_list = 1

data:
  warn    dmarc_status   = quarantine
          !authenticated = *
          set $acl_m_quarantine = 1
          # Do something in a transport with this flag variable

  deny    dmarc_status   = reject
          !authenticated = *
          message        = Message from $dmarc_used_domain failed sender's DMARC policy, REJECT
`
	r := &Reporter{}
	f := Parse("seed.conf", []byte(text), r)
	if len(r.List) != 0 {
		t.Fatal(r.List.Format())
	}
	var got []string
	for _, a := range f.ACLs {
		for _, s := range a.Statements {
			var items []string
			for _, it := range s.Items {
				n := it.Name
				if it.Negated {
					n = "!" + n
				}
				if it.Arg != "" {
					n += " " + it.Arg
				}
				items = append(items, n+"="+it.Value.Text)
			}
			got = append(got, a.Name+": "+s.Verb+" "+strings.Join(items, " | "))
		}
	}
	want := []string{
		"rcpt: warn domains=+local_domains | hosts=+local_hosts | control=dmarc_disable_verify",
		"rcpt: warn !domains=+screwed_up_dmarc_records | control=dmarc_enable_forensic",
		"rcpt: warn condition=(lookup if destined to mailing list) | set acl_m_mailing_list=1",
		"data: warn dmarc_status=quarantine | !authenticated=* | set acl_m_quarantine=1",
		"data: deny dmarc_status=reject | !authenticated=* | message=Message from $dmarc_used_domain failed sender's DMARC policy, REJECT",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a : b:c", []string{"a", "b", "c"}},
		{"", nil},
		{":", []string{"", ""}},
		{"a::b : c", []string{"a:b", "c"}},
		{"<; 2001:db8::1 ; ::1", []string{"2001:db8::1", "::1"}},
		{"<, a , b,,c", []string{"a", "b,c"}},
		{" !x : +name ", []string{"!x", "+name"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got []string
			for _, it := range SplitList(NewValue(tt.in, Pos{File: "f", Line: 1, Col: 1})) {
				got = append(got, it.Text)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("SplitList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	items := SplitList(NewValue("aa : bb", Pos{File: "f", Line: 3, Col: 10}))
	if items[1].Pos.Col != 15 {
		t.Errorf("second item at column %d, want 15", items[1].Pos.Col)
	}
}

func TestValuePosAcrossContinuation(t *testing.T) {
	c, errs := load(t, "domainlist d = a.example : \\\n    b.example : \\\n  c.example\n")
	if len(errs) != 0 {
		t.Fatal(errs.Format())
	}
	items := SplitList(c.Lists["d"].Value)
	want := []Pos{{"test.conf", 1, 16}, {"test.conf", 2, 5}, {"test.conf", 3, 3}}
	for i, it := range items {
		if it.Pos != want[i] {
			t.Errorf("item %q at %v, want %v", it.Text, it.Pos, want[i])
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30": 30 * time.Second, "30s": 30 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute,
		"2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "500ms": 500 * time.Millisecond, "1.5s": 1500 * time.Millisecond,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "s", "5x", "-1s", "1h30"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
}

func TestDefaultConfigLoads(t *testing.T) {
	c, err := Load(DefaultName, DefaultText)
	if err != nil {
		t.Fatal(AsList(err).Format())
	}
	if len(c.Get("milter_listen").Lis) != 1 || len(c.Get("policy_listen").Lis) != 1 {
		t.Errorf("default config must listen for milter and policy")
	}
	for _, l := range append(c.Get("milter_listen").Lis, c.Get("policy_listen").Lis...) {
		if !strings.HasPrefix(l.Address, "127.0.0.1:") {
			t.Errorf("default listener %v is not on loopback", l)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("authserv_id = x\nbegin acl\na:\n  accept hosts = *\n"))
	f.Add(DefaultText)
	f.Add([]byte("domainlist d = <; a ; b \\\n c\n"))
	f.Add([]byte("x = \\"))
	f.Add([]byte("begin acl\n:\n !\n deny !\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Load("fuzz.conf", src)
		if err != nil {
			for _, e := range AsList(err) {
				_ = e.Format()
				if !e.Pos.IsValid() && e.Pos.File == "" {
					t.Errorf("error without a position: %v", e)
				}
			}
			return
		}
		for _, l := range c.Lists {
			SplitList(l.Value)
		}
	})
}
