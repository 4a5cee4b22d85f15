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

// Query, Evaluation and Evaluate are the SPF check of an SMTP session,
// which the spf package owns; the names stay here for the glue's callers.
type (
	Query      = spf.Query
	Evaluation = spf.Evaluation
)

// Evaluate makes the SPF check sidecar makes for an SMTP session.
func Evaluate(ctx context.Context, c *spf.Checker, q Query) *Evaluation {
	return spf.Evaluate(ctx, c, q)
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

// queryOf is the query of the transaction's session.
func queryOf(t *acl.Txn, guess string) Query {
	return Query{IP: t.Conn.ClientIP.Unmap(), Helo: t.Conn.Helo, Sender: t.Sender, Guess: guess}
}

// checker is the spf.Checker of a transaction's services.
func checker(t *acl.Txn) *spf.Checker {
	return &spf.Checker{DNS: t.Services.DNS, Receiver: t.Services.PrimaryHostname, Now: t.Services.Now}
}

// check returns the message's SPF evaluation with the guess record (or
// without: guess == ""), evaluating it on first use with the ACL run's
// context. A temperror caused by the run's own deadline is not kept: the
// next stage, with a new deadline, tries again. show makes the variables
// show this evaluation, as Exim's do after an spf or spf_guess condition.
func check(ctx context.Context, t *acl.Txn, guess string, show bool) *Evaluation {
	m := t.Results
	slot := &m.SPF
	if guess != "" {
		slot = &m.SPFGuess
	}
	q := queryOf(t, guess)
	e := *slot
	if e == nil || e.Query != q {
		ctx := ctx
		e = Evaluate(ctx, checker(t), q)
		if e.Outcome.Result != spf.TempError || ctx.Err() == nil {
			*slot = e
		}
	}
	if show {
		m.SPFShown = e
	}
	return e
}

// shown is the evaluation the variables show: that of the last spf or
// spf_guess condition of the message, or else the plain check.
func shown(ctx context.Context, t *acl.Txn) *Evaluation {
	if e := t.Results.SPFShown; e != nil && e.Query == queryOf(t, e.Query.Guess) {
		return e
	}
	return check(ctx, t, "", true)
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
		return func(ctx context.Context, t *acl.Txn) (bool, error) {
			guess := ""
			if guessing {
				guess = settingsOf(t).Guess
			}
			return match(ctx, t, string(check(ctx, t, guess, true).Outcome.Result))
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
func spfHook(ctx context.Context, t *acl.Txn) error {
	s := settingsOf(t)
	if (!s.AuthRes && !s.ReceivedHeader) || !t.HasSender || !t.Conn.ClientIP.IsValid() {
		return nil
	}
	e := check(ctx, t, "", false)
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
func lookupSPF(ctx context.Context, env expand.Env, key, arg string) (string, bool, error) {
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
	e := Evaluate(ctx, checker(t), Query{IP: ip, Helo: helo, Sender: sender})
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
	str := func(f func(e *Evaluation) string) func(ctx context.Context, t *acl.Txn) (string, error) {
		return func(ctx context.Context, t *acl.Txn) (string, error) { return f(shown(ctx, t)), nil }
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
}
