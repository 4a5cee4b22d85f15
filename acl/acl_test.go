package acl

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

// compile loads configuration text and compiles it with reg (a fresh core
// registry when nil).
func compile(t testing.TB, text string, reg *Registry) *Program {
	t.Helper()
	if reg == nil {
		reg = NewRegistry()
	}
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		t.Fatalf("load:\n%s", config.AsList(err).Format())
	}
	p, err := Compile(cfg, reg)
	if err != nil {
		t.Fatalf("compile:\n%s", config.AsList(err).Format())
	}
	return p
}

func compileErrors(t *testing.T, text string, reg *Registry) []string {
	t.Helper()
	if reg == nil {
		reg = NewRegistry()
	}
	cfg, err := config.Load("test.conf", []byte(text))
	if err != nil {
		return errStrings(err)
	}
	_, err = Compile(cfg, reg)
	return errStrings(err)
}

func errStrings(err error) []string {
	var out []string
	for _, e := range config.AsList(err).Errors() {
		out = append(out, e.Error())
	}
	return out
}

func newTxn(ip string) *Txn {
	c := &Conn{}
	if ip != "" {
		c.ClientIP = netip.MustParseAddr(ip)
	}
	return NewTxn(c, &Services{PrimaryHostname: "mx.example.net"})
}

func TestVerbs(t *testing.T) {
	tests := []struct {
		name    string
		acl     string
		want    Verb
		message string
	}{
		{"accept", "accept", Accept, ""},
		{"empty runs off the end: deny", "warn", Deny, ""},
		{"deny with message", "deny message = go away\n", Deny, "go away"},
		{"deny false goes on", "deny condition = no\naccept", Accept, ""},
		{"defer", "defer message = later\n", Defer, "later"},
		{"discard", "discard", Discard, ""},
		{"drop", "drop message = bye", Drop, "bye"},
		{"require true goes on", "require condition = yes\naccept", Accept, ""},
		{"require false denies with its message", "require message = need it\n condition = no\naccept", Deny, "need it"},
		{"warn never ends the ACL", "warn condition = yes\ndeny message = after warn", Deny, "after warn"},
		{"first false condition stops the statement", "accept condition = no\n  condition = ${if eq{$no_such}{x}}\ndeny", Deny, ""},
		{"negation", "accept !condition = no\ndeny", Accept, ""},
		{"message set after a false condition is not used", "deny condition = no\n message = x\ndeny", Deny, ""},
		{"condition error defers", "accept condition = maybe\n", Defer, ""},
		{"condition error on warn goes on", "warn condition = maybe\naccept", Accept, ""},
		{"acl condition true", "accept acl = yes_acl\ndeny", Accept, ""},
		{"acl condition false", "accept acl = no_acl\ndeny message = no", Deny, "no"},
		{"numbers", "accept condition = 0\naccept condition = 17\ndeny", Accept, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acl := strings.ReplaceAll(tt.acl, "$no_such", "$sender_host_address")
			text := "acl_smtp_connect = check\nbegin acl\ncheck:\n  " + strings.ReplaceAll(acl, "\n", "\n  ") +
				"\nyes_acl:\n  accept\nno_acl:\n  deny\n"
			p := compile(t, text, nil)
			res := p.Run(context.Background(), Connect, newTxn("192.0.2.1"))
			if res.Verb != tt.want || res.Message != tt.message {
				t.Errorf("got %s %q (err %v), want %s %q", res.Verb, res.Message, res.Err, tt.want, tt.message)
			}
		})
	}
}

func TestWarnLogsAndHeaders(t *testing.T) {
	p := compile(t, `acl_smtp_rcpt = check
begin acl
check:
  warn    condition   = yes
          log_message = first $local_part
          add_header  = X-First: 1
  warn    condition   = no
          add_header  = X-Never: 1
  warn    add_header  = :at_start:X-Top: $domain
          add_header  = not a header line
          logwrite    = :main: written now
  accept
`, nil)
	txn := newTxn("192.0.2.1")
	txn.Rcpt = "user@example.org"
	res := p.Run(context.Background(), Rcpt, txn)
	if res.Verb != Accept {
		t.Fatalf("verdict %s", res.Verb)
	}
	var logs []string
	for _, l := range txn.Logs {
		logs = append(logs, l.Kind+":"+l.Text+"@"+l.ACL)
	}
	if got, want := strings.Join(logs, "|"), "log_message:first user@check|logwrite:written now@check"; got != want {
		t.Errorf("logs = %q, want %q", got, want)
	}
	var hdrs []string
	for _, h := range txn.AddHeaders {
		s := h.Text
		if h.AtStart {
			s = "^" + s
		}
		hdrs = append(hdrs, s)
	}
	if got, want := strings.Join(hdrs, "|"), "X-First: 1|^X-Top: example.org|X-ACL-Warn: not a header line"; got != want {
		t.Errorf("headers = %q, want %q", got, want)
	}
}

func TestDenyDiscardsHeadersOfItsRun(t *testing.T) {
	p := compile(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  warn add_header = X-A: 1\n  deny local_parts = bad\n  accept\n", nil)
	txn := newTxn("192.0.2.1")
	txn.Rcpt = "good@example.org"
	p.Run(context.Background(), Rcpt, txn)
	txn.Rcpt = "bad@example.org"
	if res := p.Run(context.Background(), Rcpt, txn); res.Verb != Deny {
		t.Fatalf("bad recipient: %s", res.Verb)
	}
	if len(txn.AddHeaders) != 1 {
		t.Errorf("headers after an accept and a deny = %v, want the accepted run's one", txn.AddHeaders)
	}
}

func TestSetVariables(t *testing.T) {
	p := compile(t, `acl_smtp_connect = c
acl_smtp_mail = m
begin acl
c:
  warn set acl_c_seen = conn-${sender_host_address}
  accept
m:
  warn set acl_m0 = $acl_c_seen
  warn set $acl_m_x = [$acl_m0]
  deny condition = ${if eq{$acl_m_x}{[conn-192.0.2.1]}}
       message = $acl_m_x
  accept
`, nil)
	txn := newTxn("192.0.2.1")
	p.Run(context.Background(), Connect, txn)
	txn.Reset()
	txn.HasSender = true
	res := p.Run(context.Background(), Mail, txn)
	if res.Verb != Deny || res.Message != "[conn-192.0.2.1]" {
		t.Errorf("got %s %q", res.Verb, res.Message)
	}
	txn.Reset()
	if got := slot(txn.Vars, 0); got != "" {
		t.Errorf("acl_m0 survived Reset: %q", got)
	}
	if got := slot(txn.Conn.Vars, 0); got != "conn-192.0.2.1" {
		t.Errorf("acl_c_seen lost: %q", got)
	}
}

func TestControls(t *testing.T) {
	reg := NewRegistry()
	reg.Control(ControlDef{Name: "test_flag", Stages: FromMail})
	reg.Control(ControlDef{Name: "test_reason", Arg: ArgRequired})
	p := compile(t, "acl_smtp_rcpt = r\nbegin acl\nr:\n  warn control = test_flag\n  warn control = test_reason/spam score\n  accept\n", reg)
	txn := newTxn("192.0.2.1")
	p.Run(context.Background(), Rcpt, txn)
	if _, ok := txn.Control("test_flag"); !ok {
		t.Errorf("test_flag not set")
	}
	if v, _ := txn.Control("test_reason"); v != "spam score" {
		t.Errorf("test_reason = %q", v)
	}
	errs := compileErrors(t, "acl_smtp_connect = c\nbegin acl\nc:\n  warn control = test_flag\n  warn control = test_reason\n  warn control = test_flagg\n  accept", reg)
	want := []string{
		`test.conf:4:18: control "test_flag" cannot be used in ACL "c", which runs at CONNECT (acl_smtp_connect): it is available at MAIL, RCPT, DATA`,
		`test.conf:5:18: control "test_reason" needs an argument: control = test_reason/VALUE`,
		`test.conf:6:18: unknown control "test_flagg": did you mean "test_flag"?`,
	}
	if strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown condition", "begin acl\na:\n  deny domian = x", `test.conf:3:8: unknown condition or modifier "domian": did you mean "domains"?`},
		{"wrong stage condition", "acl_smtp_mail = a\nbegin acl\na:\n  deny domains = x", `test.conf:4:8: condition "domains" cannot be used in ACL "a", which runs at MAIL (acl_smtp_mail): it is available at RCPT`},
		{"wrong stage via acl call", "acl_smtp_connect = a\nbegin acl\na:\n  accept acl = b\nb:\n  deny senders = x", `test.conf:6:8: condition "senders" cannot be used in ACL "b", which runs at CONNECT (acl_smtp_connect via "acl = b"): it is available at MAIL, RCPT, DATA`},
		{"unknown variable", "acl_smtp_mail = a\nbegin acl\na:\n  deny message = $sender_adress", `test.conf:4:18: unknown variable $sender_adress: did you mean "$sender_address"?`},
		{"variable at wrong stage", "acl_smtp_mail = a\nbegin acl\na:\n  deny message = x $local_part", `test.conf:4:20: variable $local_part cannot be used in ACL "a", which runs at MAIL (acl_smtp_mail): it is available at RCPT`},
		{"headers before data", "acl_smtp_rcpt = a\nbegin acl\na:\n  deny message = $h_Subject:", `test.conf:4:18: header variables ($h_…) cannot be used in ACL "a", which runs at RCPT (acl_smtp_rcpt): it is available at DATA`},
		{"acl var never set", "begin acl\na:\n  warn set acl_m_flag = 1\n  deny condition = ${if eq{$acl_m_flga}{1}}", `test.conf:4:28: variable $acl_m_flga is never set by a "set" modifier: did you mean "$acl_m_flag"?`},
		{"bad set name", "begin acl\na:\n  warn set acl_x = 1", `test.conf:3:8: set needs a variable acl_c0…acl_c9, acl_c_NAME, acl_m0…acl_m9 or acl_m_NAME: set acl_m_NAME = value`},
		{"negated modifier", "begin acl\na:\n  warn !message = x", `test.conf:3:8: modifier "message" cannot be negated with "!"`},
		{"missing named list", "begin acl\na:\n  accept hosts = +relay_host", `test.conf:3:18: no hostlist named "relay_host" is defined`},
		{"named list of the wrong kind", "domainlist d = x\nbegin acl\na:\n  accept hosts = +d", `test.conf:4:18: +d is a domainlist (defined at test.conf:1:1), but a hostlist is needed here`},
		{"list suggestion", "hostlist relay_hosts = 127.0.0.1\nbegin acl\na:\n  accept hosts = 10.0.0.1 : +relay_host", `test.conf:4:29: no hostlist named "relay_host" is defined: did you mean "+relay_hosts"?`},
		{"bad regex", "begin acl\na:\n  accept senders = ^[x", "test.conf:3:20: bad regular expression \"^[x\": error parsing regexp: missing closing ]: `[x`: did you mean \"\\[\" (a literal \"[\")?"},
		{"ipv6 in colon list", "begin acl\na:\n  accept hosts = 2001:db8::1", `test.conf:3:23: bad IP address "db8:1" (in a colon-separated list, write IPv6 addresses in a list starting with "<;")`},
		{"acl condition names missing acl", "begin acl\na:\n  accept acl = b2\nb:\n  accept", `test.conf:3:16: acl: no ACL named "b2": did you mean "b"?`},
		{"self-referencing list", "domainlist d = x : +d\nacl_smtp_rcpt = a\nbegin acl\na:\n  accept domains = +d", `test.conf:1:20: list "d" refers to itself`},
		{"bare word", "begin acl\na:\n  accept\n    endpass", `test.conf:4:5: "endpass" is obsolete and not supported: split the statement instead`},
		{"expansion syntax", "begin acl\na:\n  accept condition = ${if eqq{a}{b}}", `test.conf:3:27: unknown condition "eqq" in ${if}: did you mean "eq"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := compileErrors(t, tt.text, nil)
			for _, e := range errs {
				if e == tt.want {
					return
				}
			}
			t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), tt.want)
		})
	}
}

func TestPanicDefers(t *testing.T) {
	reg := NewRegistry()
	reg.Condition(CondDef{Name: "boom", Compile: func(*CondCompile) (CondFunc, error) {
		return func(context.Context, *Txn) (bool, error) { panic("kaboom") }, nil
	}})
	p := compile(t, "acl_smtp_connect = a\nbegin acl\na:\n  accept boom = 1\n", reg)
	res := p.Run(context.Background(), Connect, newTxn("192.0.2.1"))
	if res.Verb != Defer || res.Err == nil || !strings.Contains(res.Err.Error(), "kaboom") || res.Pos.Line != 4 {
		t.Errorf("got %s at %v (%v), want defer at line 4", res.Verb, res.Pos, res.Err)
	}
}

func TestConditionErrorCarriesPosition(t *testing.T) {
	reg := NewRegistry()
	sentinel := errors.New("dns timeout")
	reg.Condition(CondDef{Name: "flaky", Compile: func(*CondCompile) (CondFunc, error) {
		return func(context.Context, *Txn) (bool, error) { return false, sentinel }, nil
	}})
	p := compile(t, "acl_smtp_connect = a\nbegin acl\na:\n  deny flaky = 1\n", reg)
	res := p.Run(context.Background(), Connect, newTxn("192.0.2.1"))
	if res.Verb != Defer || !errors.Is(res.Err, sentinel) || !strings.Contains(res.Err.Error(), "test.conf:4:8: flaky") {
		t.Errorf("got %s: %v", res.Verb, res.Err)
	}
}

func TestNestedACLDepth(t *testing.T) {
	p := compile(t, "acl_smtp_connect = a\nbegin acl\na:\n  accept acl = a\n", nil)
	res := p.Run(context.Background(), Connect, newTxn("192.0.2.1"))
	if res.Verb != Defer {
		t.Errorf("infinite recursion gave %s", res.Verb)
	}
}

func TestNoACLAccepts(t *testing.T) {
	p := compile(t, "", nil)
	if res := p.Run(context.Background(), Rcpt, newTxn("192.0.2.1")); res.Verb != Accept {
		t.Errorf("no ACL: %s", res.Verb)
	}
}

func TestHooksAndTimeout(t *testing.T) {
	reg := NewRegistry()
	var ran []string
	reg.AddHook(Hook{Name: "h", Stages: OnlyData, Run: func(ctx context.Context, t *Txn) error {
		ran = append(ran, t.Stage.String())
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return errors.New("hook failed")
	}})
	p := compile(t, "acl_timeout = 5s\nacl_smtp_data = d\nbegin acl\nd:\n  accept\n", reg)
	txn := newTxn("192.0.2.1")
	p.Run(context.Background(), Rcpt, txn)
	res := p.Run(context.Background(), Data, txn)
	if res.Verb != Accept || strings.Join(ran, ",") != "data" {
		t.Fatalf("verdict %s, hooks ran at %v", res.Verb, ran)
	}
	if len(txn.Logs) != 1 || txn.Logs[0].Text != "hook failed" || txn.Logs[0].ACL != "(h)" {
		t.Errorf("hook error not logged: %+v", txn.Logs)
	}
}

func TestConfigurer(t *testing.T) {
	reg := NewRegistry()
	reg.AddConfigurer(Configurer{Name: "feat", Configure: func(cfg *config.Config) (any, error) {
		if cfg.String("authserv_id") == "bad" {
			s := cfg.Get("authserv_id")
			return nil, config.ErrorList{{Pos: s.Value.Pos, Msg: "authserv_id must not be bad"}}
		}
		return cfg.String("authserv_id"), nil
	}})
	reg.Variable(VarDef{Name: "feat", Get: func(_ context.Context, t *Txn) (string, error) { s, _ := t.Feature("feat").(string); return s, nil }})
	p := compile(t, "authserv_id = mx1\nacl_smtp_connect = c\nbegin acl\nc:\n  deny message = $feat\n", reg)
	if res := p.Run(context.Background(), Connect, newTxn("192.0.2.1")); res.Message != "mx1" {
		t.Errorf("feature value %q", res.Message)
	}
	errs := compileErrors(t, "authserv_id = bad\n", reg)
	if len(errs) != 1 || errs[0] != "test.conf:1:15: authserv_id must not be bad" {
		t.Errorf("errors %q", errs)
	}
}

func TestCoreQuarantineControl(t *testing.T) {
	p := compile(t, "acl_smtp_data = d\nbegin acl\nd:\n  warn control = quarantine/DMARC said so\n  accept\n", nil)
	txn := newTxn("192.0.2.1")
	p.Run(context.Background(), Data, txn)
	if v, ok := txn.Control("quarantine"); !ok || v != "DMARC said so" {
		t.Errorf("quarantine = %q %v", v, ok)
	}
}

func TestAddAuthResultDedup(t *testing.T) {
	txn := newTxn("192.0.2.1")
	d := func(b string) AuthResult {
		return AuthResult{Method: "dkim", Result: "pass", Props: []AuthProp{{Type: "header", Name: "d", Value: "example.com"}, {Type: "header", Name: "b", Value: b}}}
	}
	txn.AddAuthResult(d("aaaa"))
	txn.AddAuthResult(d("bbbb"))
	txn.AddAuthResult(AuthResult{Method: "spf", Result: "temperror", Props: []AuthProp{{Type: "smtp", Name: "mailfrom", Value: "x.example"}}})
	txn.AddAuthResult(AuthResult{Method: "spf", Result: "pass", Props: []AuthProp{{Type: "smtp", Name: "mailfrom", Value: "x.example"}}})
	if len(txn.AuthResults) != 3 || txn.AuthResults[2].Result != "pass" {
		t.Errorf("results: %+v", txn.AuthResults)
	}
}

// TestCanRefuse: only a stage with no ACL, or an ACL that starts with a
// bare accept, is sure to accept.
func TestCanRefuse(t *testing.T) {
	tests := []struct {
		acl  string // the MAIL ACL's body; "" for none
		want bool
	}{
		{"", false},
		{"accept", false},
		{"accept\ndeny", false},
		{"accept condition = yes", true},
		{"accept logwrite = hello", true},
		{"warn log_message = x\naccept", true},
		{"deny", true},
		{"require condition = yes\naccept", true},
	}
	for _, tc := range tests {
		text := "begin acl\nother:\n  accept\n"
		if tc.acl != "" {
			text = "acl_smtp_mail = m\nbegin acl\nm:\n  " + strings.ReplaceAll(tc.acl, "\n", "\n  ") + "\n"
		}
		p := compile(t, text, nil)
		if got := p.CanRefuse(Mail); got != tc.want {
			t.Errorf("%q: CanRefuse = %v, want %v", tc.acl, got, tc.want)
		}
		if p.CanRefuse(Rcpt) {
			t.Errorf("%q: a stage without an ACL can refuse", tc.acl)
		}
	}
}

// TestRunDeadline: a run gets acl_timeout as its deadline, unless the
// caller's comes first.
func TestRunDeadline(t *testing.T) {
	reg := NewRegistry()
	var got time.Time
	reg.AddHook(Hook{Name: "h", Stages: OnlyData, Run: func(ctx context.Context, t *Txn) error {
		got, _ = ctx.Deadline()
		return nil
	}})
	p := compile(t, "acl_timeout = 5s\nacl_smtp_data = d\nbegin acl\nd:\n  accept\n", reg)
	if p.Timeout() != 5*time.Second {
		t.Fatalf("Timeout() = %v", p.Timeout())
	}
	for _, tc := range []struct {
		name   string
		parent time.Duration // 0: no deadline
		want   time.Duration
	}{
		{"none", 0, 5 * time.Second},
		{"later", time.Minute, 5 * time.Second},
		{"earlier", time.Second, time.Second},
	} {
		ctx := context.Background()
		if tc.parent > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tc.parent)
			defer cancel()
		}
		got = time.Time{}
		p.Run(ctx, Data, newTxn("192.0.2.1"))
		if d := time.Until(got); d > tc.want || d < tc.want-time.Second {
			t.Errorf("%s: deadline in %v, want about %v", tc.name, d, tc.want)
		}
	}
}
