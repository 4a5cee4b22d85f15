package checks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/spf"
)

// Query is what one SPF check of an SMTP session is about.
type Query struct {
	IP   netip.Addr // the SMTP client; invalid for a local submission
	Helo string     // the HELO/EHLO argument
	// Sender is the MAIL FROM address; "" is the null sender, for which
	// the HELO identity is checked (RFC 7208 §2.3, §2.4).
	Sender string
	// Guess is a best-guess record evaluated for a domain that publishes
	// no SPF record (spf_guess); "" for a plain check.
	Guess string
}

// Evaluation is a Query and its outcome.
type Evaluation struct {
	Query   Query
	Outcome spf.Outcome
}

// Evaluate makes the SPF check sidecar makes for an SMTP session: the MAIL
// FROM identity, or the HELO identity for the null sender, with q.Guess
// for a domain without a record when it is set. The daemon's conditions,
// variables, lookup and DATA hook, and the "sidecar spf" command, all come
// here. A client without an IP address (local submission) gives none
// without any DNS query.
func Evaluate(ctx context.Context, c *spf.Checker, q Query) *Evaluation {
	q.IP = q.IP.Unmap()
	req := spf.Request{IP: q.IP, Helo: q.Helo, Sender: q.Sender}
	e := &Evaluation{Query: q}
	identity, domain, sender := spf.IdentityMailFrom, domainOf(q.Sender), q.Sender
	if q.Sender == "" {
		identity, domain, sender = spf.IdentityHelo, q.Helo, "postmaster@"+q.Helo
	}
	switch {
	case !q.IP.IsValid():
		receiver := c.Receiver
		if receiver == "" {
			receiver = "unknown"
		}
		e.Outcome = spf.Outcome{Result: spf.None, Identity: identity, Domain: domain, Sender: sender,
			Receiver: receiver, Problem: "no client IP address (local submission)"}
	case q.Guess != "":
		e.Outcome = c.CheckHostGuess(ctx, q.IP, domain, sender, q.Helo, q.Guess)
		e.Outcome.Identity = identity
	case identity == spf.IdentityHelo:
		e.Outcome = c.CheckHelo(ctx, req)
	default:
		e.Outcome = c.CheckMailFrom(ctx, req)
	}
	return e
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// Request returns the query as the spf package's Request.
func (e *Evaluation) Request() spf.Request {
	return spf.Request{IP: e.Query.IP, Helo: e.Query.Helo, Sender: e.Query.Sender}
}

// Received returns the Received-SPF header field (RFC 7208 §9.1) on one
// line, name included: "Received-SPF: pass (…) client-ip=…; …".
func (e *Evaluation) Received() string {
	return "Received-SPF: " + e.Outcome.ReceivedSPF("", e.Request())
}

// Reason is a short account of the outcome for the reason of an
// Authentication-Results entry (RFC 8601 §2.2): the mechanism that
// matched, the explanation of a fail, or why there was no verdict.
func (e *Evaluation) Reason() string {
	o := e.Outcome
	var r string
	switch o.Result {
	case spf.Pass, spf.Fail, spf.SoftFail, spf.Neutral:
		r = "no mechanism matched"
		if o.Mechanism != "" && o.Mechanism != "default" {
			r = "mechanism '" + o.Mechanism + "' matched"
		}
		if o.Result == spf.Fail && o.Explanation != "" {
			r += "; explanation: " + o.Explanation
		}
	default:
		r = o.Problem
		if r == "" && o.Result == spf.None {
			r = "no SPF record"
		}
	}
	return clip(printable(r), maxReason)
}

// maxReason bounds the reason text, which may quote the sender domain's
// explanation.
const maxReason = 200

// AuthResult returns the Authentication-Results entry of the outcome:
// spf=RESULT with smtp.mailfrom=DOMAIN, or smtp.helo=NAME when the HELO
// identity was checked because the sender was null (RFC 8601 §2.7.2).
func (e *Evaluation) AuthResult() acl.AuthResult {
	prop := acl.AuthProp{Type: "smtp", Name: "mailfrom", Value: e.Outcome.Domain}
	if e.Outcome.Identity == spf.IdentityHelo {
		prop = acl.AuthProp{Type: "smtp", Name: "helo", Value: e.Query.Helo}
	}
	return acl.AuthResult{Method: "spf", Result: string(e.Outcome.Result), Reason: e.Reason(), Props: []acl.AuthProp{prop}}
}

// printable replaces control characters and non-ASCII octets with '?'.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// foldHeader folds a one-line header field at spaces so that lines stay
// within 78 columns where possible (RFC 5322 §2.2.3), never inside a
// quoted-string; continuation lines start with a tab.
func foldHeader(line string) string {
	const width = 78
	var b strings.Builder
	col, inQuote, lastBreak := 0, false, -1
	start := 0 // start of the current output line in line
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQuote:
			i++
			continue
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote && i > start:
			lastBreak = i
		}
		col = i - start
		if start > 0 {
			col += 1 // the tab
		}
		if col >= width && lastBreak > start {
			b.WriteString(line[start:lastBreak])
			b.WriteString("\r\n\t")
			start = lastBreak + 1
			lastBreak = -1
		}
	}
	b.WriteString(line[start:])
	return b.String()
}

// The state a transaction keeps: each check, by what it was about, and
// the one the variables show.
type (
	checkKey struct {
		guess  string
		ip     netip.Addr
		helo   string
		sender string
	}
	lastKey struct{}
)

// queryOf is the query of the transaction's session.
func queryOf(t *acl.Txn, guess string) Query {
	return Query{IP: t.Conn.ClientIP.Unmap(), Helo: t.Conn.Helo, Sender: t.Sender, Guess: guess}
}

func (q Query) key() checkKey { return checkKey{q.Guess, q.IP, q.Helo, q.Sender} }

// checker is the spf.Checker of a transaction's services.
func checker(t *acl.Txn) *spf.Checker {
	return &spf.Checker{DNS: t.Services.DNS, Receiver: t.Services.PrimaryHostname, Now: t.Services.Now}
}

// check returns the transaction's SPF evaluation with the guess record
// (or without: guess == ""), evaluating it on first use with the ACL run's
// context. A temperror caused by the run's own deadline is not kept: the
// next stage, with a new deadline, tries again. show makes the variables
// show this evaluation, as Exim's do after an spf or spf_guess condition.
func check(t *acl.Txn, guess string, show bool) *Evaluation {
	q := queryOf(t, guess)
	k := q.key()
	e, ok := t.Value(k).(*Evaluation)
	if !ok {
		ctx := t.Context()
		e = Evaluate(ctx, checker(t), q)
		if e.Outcome.Result != spf.TempError || ctx.Err() == nil {
			t.SetValue(k, e)
		}
	}
	if show {
		t.SetValue(lastKey{}, e)
	}
	return e
}

// shown is the evaluation the variables show: that of the last spf or
// spf_guess condition of the transaction, or else the plain check.
func shown(t *acl.Txn) *Evaluation {
	if e, ok := t.Value(lastKey{}).(*Evaluation); ok && e.Query == queryOf(t, e.Query.Guess) {
		return e
	}
	return check(t, "", true)
}

// Result words of the spf and spf_guess conditions, and Exim's deprecated
// spellings (seed 001: changed in Exim 4.83).
var (
	resultWords = []string{
		string(spf.Pass), string(spf.Fail), string(spf.SoftFail), string(spf.Neutral),
		string(spf.None), string(spf.PermError), string(spf.TempError),
	}
	resultAliases = map[string]string{"err_perm": string(spf.PermError), "err_temp": string(spf.TempError)}
)

// SPFStages are the stages where the SPF conditions and variables exist:
// from MAIL FROM on, when the sender is known.
const SPFStages = acl.FromMail

func compileSPF(guessing bool) func(cc *acl.CondCompile) (acl.CondFunc, error) {
	return func(cc *acl.CondCompile) (acl.CondFunc, error) {
		match, err := cc.ResultList(resultWords, resultAliases)
		if err != nil {
			return nil, err
		}
		return func(t *acl.Txn) (bool, error) {
			guess := ""
			if guessing {
				guess = settingsOf(t).Guess
			}
			return match(t, string(check(t, guess, true).Outcome.Result))
		}, nil
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// spfHook reports the SPF result of every message at DATA: in
// Authentication-Results unless spf_authres is false, and as a
// Received-SPF header when spf_received_header is true. A local
// submission (no client address) is not checked.
func spfHook(t *acl.Txn) error {
	s := settingsOf(t)
	if (!s.AuthRes && !s.ReceivedHeader) || !t.HasSender || !t.Conn.ClientIP.IsValid() {
		return nil
	}
	e := check(t, "", false)
	if s.AuthRes {
		t.AddAuthResult(e.AuthResult())
	}
	if s.ReceivedHeader {
		t.AddHeaders = append(t.AddHeaders, acl.AddedHeader{Text: foldHeader(e.Received()), AtStart: true})
	}
	return nil
}

// lookupSPF answers ${lookup{user@domain}spf{IP}}: the SPF result word for
// that sender (a bare domain stands for postmaster@domain) and client
// address, IPv4 or IPv6. The session's HELO name is used for %{h} when IP
// is the session's client.
func lookupSPF(env expand.Env, key, arg string) (string, bool, error) {
	t, ok := env.(*acl.Txn)
	if !ok || t.Services == nil || t.Services.DNS == nil {
		return "", false, errors.New("no DNS resolver to look SPF up with")
	}
	ipText := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(arg), "["), "]")
	ip, err := netip.ParseAddr(ipText)
	if err != nil {
		return "", false, fmt.Errorf("%q is not an IP address: write ${lookup{user@domain}spf{192.0.2.1}}", arg)
	}
	ip = ip.WithZone("").Unmap()
	sender := strings.TrimSpace(key)
	if sender == "" || sender == "@" {
		return "", false, errors.New("the key must be an address or a domain: ${lookup{user@domain}spf{IP}}")
	}
	helo := ""
	if t.Conn != nil && t.Conn.ClientIP.Unmap() == ip {
		helo = t.Conn.Helo
	}
	e := Evaluate(t.Context(), checker(t), Query{IP: ip, Helo: helo, Sender: sender})
	return string(e.Outcome.Result), true, nil
}

// registerSPF adds the SPF conditions, variables and DATA hook to reg.
func registerSPF(reg *acl.Registry) {
	reg.Condition(acl.CondDef{Name: "spf", Stages: SPFStages,
		Doc:     "the SPF result of MAIL FROM (HELO for <>) is in the list: pass fail softfail neutral none permerror temperror (! inverts an item)",
		Compile: compileSPF(false)})
	reg.Condition(acl.CondDef{Name: "spf_guess", Stages: SPFStages,
		Doc:     "as spf, but a domain without SPF record is checked against the spf_guess record",
		Compile: compileSPF(true)})
	str := func(f func(e *Evaluation) string) func(t *acl.Txn) (string, error) {
		return func(t *acl.Txn) (string, error) { return f(shown(t)), nil }
	}
	for _, d := range []acl.VarDef{
		{Name: "spf_result", Doc: "the SPF result word: pass, fail, softfail, neutral, none, permerror or temperror",
			Get: str(func(e *Evaluation) string { return string(e.Outcome.Result) })},
		{Name: "spf_header_comment", Doc: "a one-line human-readable account of the SPF result",
			Get: str(func(e *Evaluation) string { return e.Outcome.HeaderComment() })},
		{Name: "spf_smtp_comment", Doc: "text for an SMTP reply: the domain's explanation of a fail, or a default",
			Get: str(func(e *Evaluation) string { return e.Outcome.SMTPComment() })},
		{Name: "spf_received", Doc: "a complete Received-SPF: header (RFC 7208 §9.1), for add_header",
			Get: str((*Evaluation).Received)},
		{Name: "spf_used_domain", Doc: "the domain SPF checked (of MAIL FROM, or the HELO name for <>)",
			Get: str(func(e *Evaluation) string { return e.Outcome.Domain })},
		{Name: "spf_result_guessed", Doc: "yes when the result came from the spf_guess record, else no",
			Get: str(func(e *Evaluation) string { return yesNo(e.Outcome.Guessed) })},
	} {
		d.Stages = SPFStages
		reg.Variable(d)
	}
	reg.AddHook(acl.Hook{Name: "spf", Stages: acl.OnlyData, Run: spfHook})
}
