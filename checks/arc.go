package checks

// ARC glue (RFC 8617): the verify = arc condition, the $arc_* variables,
// the arc result in Authentication-Results, and sealing with arc_sign.
//
// Validation streams: the milter's body hook (ARCBodyHook) feeds the header
// fields and the body to an arc.Stream, which hashes the body as it passes,
// so memory is bounded by the header. The chain is validated (the sealers'
// keys fetched from DNS) on first use at DATA, under the stage's deadline,
// and kept on the transaction. A message without ARC fields is "none" at
// once, without a stream, unless arc_sign needs the body hash of a seal.
//
// Sealing happens in a DATA hook, the last one, before the DATA ACL runs:
// the new ARC-Authentication-Results copies the Authentication-Results
// entries the hooks gathered (spf, dkim, dmarc, arc), and the three fields
// go to Txn.AddHeaders with :at_start:. A hook cannot see the ACL's verdict,
// but the milter sends header changes only for an accepted message, so the
// set reaches the message exactly when the DATA ACL accepts; the ACL can
// also refuse it with "control = no_arc_sign". Nothing is sealed on a
// temporary DNS failure, on a chain whose newest seal says cv=fail, or
// beyond 50 sets. The ARC-Message-Signature covers the header as received:
// fields that the DATA ACL adds or removes afterwards must not be among
// arc_sign_headers (Authentication-Results, which sidecar adds and strips,
// is refused there).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/internal/suggest"
	"github.com/mailsidecar/sidecar/results"
)

// The main options of the ARC feature.
const (
	OptARCSign        = "arc_sign"
	OptARCSignHeaders = "arc_sign_headers"
	OptARCAuthRes     = "arc_authres"
)

func init() {
	for _, d := range []config.OptionDef{
		{Name: OptARCSign, Kind: config.KindString, Default: "",
			Doc: "seal accepted messages with an ARC Set (RFC 8617): DOMAIN : SELECTOR : KEYFILE (PEM RSA or Ed25519 key, read when the configuration loads)"},
		{Name: OptARCSignHeaders, Kind: config.KindString, Default: "",
			Doc: "header fields the ARC-Message-Signature of arc_sign covers, \"+name\" to forbid adding one more later; empty: the default list (from, reply-to, subject, date, to, cc, resent-*, in-reply-to, references, message-id, MIME, list-*, dkim-signature)"},
		{Name: OptARCAuthRes, Kind: config.KindBool, Default: "true",
			Doc: "validate the ARC chain of every message at DATA and report it in Authentication-Results (arc=pass (i=N) header.oldest-pass=K smtp.remote-ip=IP)"},
	} {
		config.RegisterOption(d)
	}
}

// ARCSettings are the main options of the ARC feature.
type ARCSettings struct {
	// AuthRes: validate every message's chain at DATA and add the arc
	// result to Txn.AuthResults.
	AuthRes bool
	// Signer seals accepted messages; nil when arc_sign is not set.
	Signer *arc.Signer
}

// DefaultARCSettings are the settings of a configuration that sets none of
// the ARC options.
func DefaultARCSettings() ARCSettings { return ARCSettings{AuthRes: true} }

// arcFeature is the name under which the ARC settings are kept on a
// compiled acl.Program.
const arcFeature = "arc"

// arcSettingsOf returns the ARC settings of the Program running t.
func arcSettingsOf(t *acl.Txn) ARCSettings {
	if s, ok := t.Feature(arcFeature).(ARCSettings); ok {
		return s
	}
	return DefaultARCSettings()
}

// ARCSettingsFrom reads the ARC options of a loaded configuration. The key
// file of arc_sign is read and tried (one seal of a small message) now,
// so that a missing file, a key that is not one, an RSA key under 1024
// bits or an invalid domain or selector is a load-time error; the error
// is a config.ErrorList pointing at the option.
func ARCSettingsFrom(cfg *config.Config) (ARCSettings, error) {
	s := ARCSettings{AuthRes: cfg.Bool(OptARCAuthRes)}
	var errs config.ErrorList
	fail := func(pos config.Pos, format string, args ...any) {
		errs = append(errs, cfg.ErrorAt(pos, format, args...))
	}
	headers := arcSignHeaders(cfg.Get(OptARCSignHeaders).Value, fail)
	sign := cfg.Get(OptARCSign).Value
	if strings.TrimSpace(sign.Text) != "" {
		s.Signer = arcSignerFrom(sign, headers, fail)
	}
	if len(errs) > 0 {
		return DefaultARCSettings(), errs
	}
	return s, nil
}

const arcSignExample = OptARCSign + " = example.net : arc2025 : /etc/sidecar/arc.key"

// signerFrom builds the Signer of an arc_sign value, reporting problems
// through fail.
func arcSignerFrom(v config.Value, headers []string, fail func(config.Pos, string, ...any)) *arc.Signer {
	items := config.SplitList(v)
	if len(items) != 3 {
		fail(v.Pos, "%s needs DOMAIN : SELECTOR : KEYFILE, not %d item%s (for example: %s)", OptARCSign, len(items), arcPlural(len(items)), arcSignExample)
		return nil
	}
	domain, selector, path := items[0], items[1], items[2]
	ok := true
	for _, c := range []struct {
		item  config.ListItem
		check func(string) error
	}{{domain, arc.CheckDomain}, {selector, arc.CheckSelector}} {
		if err := c.check(c.item.Text); err != nil {
			fail(c.item.Pos, "%s: %v (for example: %s)", OptARCSign, err, arcSignExample)
			ok = false
		}
	}
	if path.Text == "" {
		fail(path.Pos, "%s: the key file is missing (for example: %s)", OptARCSign, arcSignExample)
		return nil
	}
	data, err := os.ReadFile(path.Text)
	if err != nil {
		fail(path.Pos, "%s: cannot read the key file: %v", OptARCSign, err)
		return nil
	}
	key, err := arc.ParsePrivateKey(data)
	if err != nil {
		fail(path.Pos, "%s: %s is not a usable signing key: %v (a PEM RSA key of at least 1024 bits, or an Ed25519 key)", OptARCSign, path.Text, err)
		return nil
	}
	if err := arc.CheckSigningKey(key); err != nil {
		fail(path.Pos, "%s: %s: %v", OptARCSign, path.Text, err)
		return nil
	}
	if !ok {
		return nil
	}
	signer := &arc.Signer{Domain: strings.ToLower(domain.Text), Selector: selector.Text, Key: key, Headers: headers}
	if err := signer.Check(); err != nil {
		fail(v.Pos, "%s: %v", OptARCSign, err)
		return nil
	}
	return signer
}

// signHeaders reads arc_sign_headers: field names, each optionally
// "+name". An empty list means arc.DefaultHeaders.
func arcSignHeaders(v config.Value, fail func(config.Pos, string, ...any)) []string {
	var names []string
	for _, it := range config.SplitList(v) {
		if it.Text == "" {
			continue
		}
		if err := arc.CheckSignHeader(it.Text); err != nil {
			fail(it.Pos, "%s: %v", OptARCSignHeaders, err)
			continue
		}
		names = append(names, it.Text)
	}
	return names
}

func arcPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// errARCNoBody: the chain cannot be validated because the message body never
// went through the ARC body writer.
var errARCNoBody = errors.New("ARC: the message body was not seen (no ARC body writer ran for this message)")

// ARCBody validates the ARC chain of one message as it streams past: the
// milter's body writer (milter.BodyWriter), started by ARCBodyHook.
type ARCBody struct {
	m *results.ARC
}

// ARCBodyHook starts ARC validation of the message in t, whose header
// fields (t.Headers) are complete: the daemon installs it as a milter
// body hook, and "sidecar check" can call it the same way, then Write the
// body and End. It returns nil when there is nothing to stream: a message
// without ARC header fields has the chain state none, known at once,
// unless arc_sign asks for the body hash of a new seal. Memory stays
// bounded by the header: the body is only hashed.
func ARCBodyHook(t *acl.Txn) *ARCBody {
	m := &t.Results.ARC
	m.Examined = true
	// Before any stage has run, the Program is unknown: hash for a seal
	// in case its configuration seals.
	signing := arcSettingsOf(t).Signer != nil || t.Feature(arcFeature) == nil
	has := hasARCFields(t.Headers)
	if !has && !signing {
		m.Chain = &arc.Chain{State: arc.None}
		return nil
	}
	var dns = t.Services.DNS
	if has && dns == nil {
		m.Err = errors.New("ARC: no DNS resolver to fetch the sealers' keys with")
		return nil
	}
	v := &arc.Validator{DNS: dns, Now: t.Services.Now}
	m.Stream = v.NewStream()
	if signing {
		m.Stream.HashForSealing()
	}
	var buf []byte
	for _, h := range t.Headers {
		buf = append(append(append(buf[:0], h.Name...), ':'), h.Value...)
		_ = m.Stream.Header(buf) // a line that is not a field is ignored, as the MTA passed it
	}
	body := &ARCBody{m: m}
	t.Results.OnClose(body.Abort)
	return body
}

// Write hashes body data (CRLF or LF line breaks).
func (b *ARCBody) Write(p []byte) (int, error) {
	if b.m.Stream == nil {
		return 0, errors.New("ARC: body after abort")
	}
	return b.m.Stream.Write(p)
}

// End marks the end of the body. The chain is validated (with DNS
// lookups) when first needed, under the DATA ACL's deadline.
func (b *ARCBody) End() error { return nil }

// Abort drops the message.
func (b *ARCBody) Abort() {
	b.m.Stream = nil
	if b.m.Chain == nil && b.m.Err == nil {
		b.m.Err = errors.New("ARC: message aborted")
	}
}

func hasARCFields(hs []acl.Header) bool {
	for _, h := range hs {
		if len(h.Name) > 4 && strings.EqualFold(h.Name[:4], "arc-") {
			return true
		}
	}
	return false
}

// ARCChain returns the ARC validation result of the message in t,
// validating the chain on first use with the context of the running ACL
// stage. The error says why there is none (the body was not streamed
// through ARCBodyHook, no DNS resolver); a message without ARC header
// fields always has a chain, of state none. A temporary DNS failure is
// not an error: the chain says Temp.
func ARCChain(ctx context.Context, t *acl.Txn) (*arc.Chain, error) {
	m := &t.Results.ARC
	if m.Chain == nil && m.Err == nil {
		switch {
		case m.Stream != nil:
			m.Chain = m.Stream.Finish(ctx)
		case !hasARCFields(t.Headers):
			m.Chain = &arc.Chain{State: arc.None}
		default:
			return nil, errARCNoBody
		}
	}
	if m.Chain == nil {
		return nil, m.Err
	}
	return m.Chain, nil
}

// ARCStateWord is the chain state as $arc_state shows it.
func ARCStateWord(c *arc.Chain) string { return c.StateWord() }

// arcHook reports the chain of every message in Authentication-Results at
// DATA, unless arc_authres is false. Only a message that went through the
// ARC body writer (ARCBodyHook: the milter always runs it) is reported, so
// that the header never claims a validation that was not made; a local
// submission (no client address) is not reported, as for SPF.
func arcHook(ctx context.Context, t *acl.Txn) error {
	if !arcSettingsOf(t).AuthRes || !t.Conn.ClientIP.IsValid() {
		return nil
	}
	if !t.Results.ARC.Examined {
		return nil
	}
	c, err := ARCChain(ctx, t)
	if err != nil {
		return err
	}
	t.AddAuthResult(c.Resinfo(t.Conn.ClientIP))
	return nil
}

// arcSealHook adds the ARC Set of arc_sign at DATA, before the DATA ACL
// runs: a hook cannot see the verdict, but the milter sends header
// changes only for an accepted message, so the set reaches the message
// only when the DATA ACL accepts, and "control = no_arc_sign" takes it
// back. It must be the last DATA hook, so that the
// ARC-Authentication-Results copies every result the other hooks added.
// Nothing is added on a temporary DNS failure (the chain's fate is
// unknown), to a chain whose newest seal says cv=fail, or beyond 50 sets.
func arcSealHook(ctx context.Context, t *acl.Txn) error {
	s := arcSettingsOf(t)
	if s.Signer == nil {
		return nil
	}
	if _, off := t.Control(ctlNoARCSign); off {
		return nil
	}
	c, err := ARCChain(ctx, t)
	if err != nil {
		return fmt.Errorf("not sealing: %w", err)
	}
	m := &t.Results.ARC
	if c.Temp {
		return fmt.Errorf("ARC: not sealing: %s", c.Reason)
	}
	if m.Stream == nil {
		return fmt.Errorf("ARC: not sealing: %w", errARCNoBody)
	}
	payload := arcAARPayload(arcAuthservID(t, s.Signer), t.AuthResults, c, t.Conn.ClientIP)
	fields, err := s.Signer.SealStream(m.Stream, payload)
	switch {
	case errors.Is(err, arc.ErrChainFailed) || errors.Is(err, arc.ErrTooManyInstances):
		return nil // nothing to add, by RFC 8617
	case err != nil:
		return fmt.Errorf("ARC: sealing: %w", err)
	}
	// ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results: the
	// milter inserts the :at_start: headers at the top in list order
	// (our Authentication-Results then goes above them).
	for _, f := range fields {
		m.Sealed = append(m.Sealed, len(t.AddHeaders))
		t.AddHeaders = append(t.AddHeaders, acl.AddedHeader{Text: f, AtStart: true})
	}
	return nil
}

// authservID names this host in the new ARC-Authentication-Results: the
// authserv_id of our Authentication-Results, or else the host name, or
// else the sealing domain.
func arcAuthservID(t *acl.Txn, s *arc.Signer) string {
	for _, id := range []string{t.Services.AuthservID, t.Services.PrimaryHostname, s.Domain} {
		if id = strings.TrimSpace(id); id != "" {
			return id
		}
	}
	return "localhost"
}

// arcAARPayload is the payload of a new ARC-Authentication-Results: our
// Authentication-Results (RFC 8617 §4.1.1) on one line, with the arc
// result added when arc_authres left it out.
func arcAARPayload(id string, results []acl.AuthResult, c *arc.Chain, ip netip.Addr) string {
	hasARC := false
	for _, r := range results {
		hasARC = hasARC || strings.EqualFold(r.Method, "arc")
	}
	if !hasARC {
		results = append(append([]acl.AuthResult(nil), results...), c.Resinfo(ip))
	}
	return authres.Line(id, results)
}

// ctlNoARCSign is the control that keeps arc_sign from sealing a message.
const ctlNoARCSign = "no_arc_sign"

// noARCSign records the control and blanks a seal already added (at DATA,
// the seal hook has run). The entries are blanked, not removed, so that
// Txn.AddHeaders keeps its length: an ACL run that rejects truncates it to
// its length at the start of the run.
func noARCSign(t *acl.Txn, _ string) error {
	t.SetControl(ctlNoARCSign, "")
	if m := &t.Results.ARC; m != nil {
		for _, i := range m.Sealed {
			if i < len(t.AddHeaders) {
				t.AddHeaders[i].Text = ""
			}
		}
		m.Sealed = nil
	}
	return nil
}

// arcResultWords are the results verify = arc/LIST may test.
var arcResultWords = []string{string(arc.Pass), string(arc.Fail), string(arc.None)}

// arcVerifyKinds are Exim's verify conditions, for the error message.
var arcVerifyKinds = []string{"arc", "certificate", "csa", "header_names_ascii", "header_sender", "header_syntax",
	"helo", "not_blind", "recipient", "reverse_host_lookup", "sender"}

// compileVerifyARC compiles Exim's verify condition, of which sidecar has the
// arc kind only: "verify = arc" (true for pass or none, as in Exim) or
// "verify = arc/LIST" with the result words pass, fail and none (with
// "!"). The chain is validated on first use; a temporary DNS failure
// makes the condition defer.
func compileVerifyARC(cc *acl.CondCompile) (acl.CondFunc, error) {
	kind, list, _ := strings.Cut(cc.Text, "/")
	kind = strings.TrimSpace(kind)
	if !strings.EqualFold(kind, "arc") {
		if strings.ContainsAny(kind, "$\\") {
			return nil, cc.Errorf("verify: the kind must be written as it is, not expanded: verify = arc[/LIST]")
		}
		hint := ""
		if !arcContains(arcVerifyKinds, strings.ToLower(kind)) {
			hint = suggest.Hint(kind, "", arcVerifyKinds)
		}
		return nil, cc.Errorf("verify = %s is not supported: sidecar has only verify = arc[/LIST] (ARC chain validation, RFC 8617; for example verify = arc/pass:none)%s", kind, hint)
	}
	var match func(ctx context.Context, t *acl.Txn, result string) (bool, error)
	if text, ok := cc.Value.Constant(); ok {
		_, list, _ = strings.Cut(text, "/")
		off := strings.IndexByte(cc.Text, '/') + 1
		m, err := arcResultList(cc, list, off)
		if err != nil {
			return nil, err
		}
		match = m
	} else {
		e := cc.Value
		match = func(ctx context.Context, t *acl.Txn, result string) (bool, error) {
			s, err := e.Eval(ctx, t)
			if err != nil {
				return false, err
			}
			k, list, _ := strings.Cut(s, "/")
			if !strings.EqualFold(strings.TrimSpace(k), "arc") {
				return false, fmt.Errorf("verify: %q is not arc[/LIST]", s)
			}
			m, err := arcResultList(cc, list, 0)
			if err != nil {
				return false, err
			}
			return m(ctx, t, result)
		}
	}
	return func(ctx context.Context, t *acl.Txn) (bool, error) {
		c, err := ARCChain(ctx, t)
		if err != nil {
			return false, err
		}
		if c.Temp {
			return false, fmt.Errorf("ARC: %s", c.Reason)
		}
		return match(ctx, t, string(c.State))
	}, nil
}

// resultList compiles the LIST of verify = arc/LIST, found at byte off of
// the value; an empty list is Exim's default, none:pass.
func arcResultList(cc *acl.CondCompile, list string, off int) (func(ctx context.Context, t *acl.Txn, result string) (bool, error), error) {
	if strings.TrimSpace(list) == "" {
		list = "none : pass"
	}
	e, err := expand.Compile(arcLiteral(list), nil)
	if err != nil {
		return nil, cc.ErrorAt(off, "verify = arc: %v", err)
	}
	pos := cc.Pos
	if off > 0 && !strings.Contains(cc.Text[:off], "\n") {
		pos.Col += off
	}
	sub := &acl.CondCompile{Name: "verify = arc", Value: e, Text: list, Pos: pos}
	return sub.ResultList(arcResultWords, nil)
}

// literal escapes s so that expand.Compile gives it back unchanged.
func arcLiteral(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`\${}`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func arcContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// arcVar returns the value of an ARC variable, or why there is none.
func arcVar(f func(c *arc.Chain) string) func(ctx context.Context, t *acl.Txn) (string, error) {
	return func(ctx context.Context, t *acl.Txn) (string, error) {
		c, err := ARCChain(ctx, t)
		if err != nil {
			return "", err
		}
		return f(c), nil
	}
}

// registerARC adds the ARC configuration reader, the verify condition,
// the variables and the no_arc_sign control. Its DATA work (the arc
// result, then the seal) runs in the order dataSteps gives.
func registerARC(reg *acl.Registry) {
	reg.AddConfigurer(acl.Configurer{Name: arcFeature, Configure: func(cfg *config.Config) (any, error) {
		s, err := ARCSettingsFrom(cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}})
	reg.Condition(acl.CondDef{Name: "verify", Stages: acl.OnlyData,
		Doc:     "verify = arc: the ARC chain (RFC 8617) is pass or none; verify = arc/LIST: its state is in the list of pass, fail, none (! inverts an item); defers on a temporary DNS failure. Other verify kinds are not supported",
		Compile: compileVerifyARC})
	for _, d := range []acl.VarDef{
		{Name: "arc_state", Doc: "the ARC chain state: pass, fail or none (temperror when a sealer's key could not be fetched)",
			Get: arcVar(ARCStateWord)},
		{Name: "arc_state_reason", Doc: "why the ARC chain failed; empty unless it did",
			Get: arcVar(func(c *arc.Chain) string { return c.Reason })},
		{Name: "arc_domains", Doc: "the ARC sealers' domains (ARC-Seal d=), colon-separated, oldest first; empty where a seal is missing",
			Get: arcVar((*arc.Chain).DomainList)},
		{Name: "arc_oldest_pass", Doc: "the lowest ARC instance whose message signature still verifies (the message is unchanged since that sealer); 0 unless the chain passes",
			Get: arcVar(func(c *arc.Chain) string { return strconv.Itoa(c.OldestPass) })},
	} {
		d.Stages = acl.OnlyData
		reg.Variable(d)
	}
	reg.Control(acl.ControlDef{Name: ctlNoARCSign, Stages: acl.FromMail, Arg: acl.ArgNone,
		Doc:   "do not seal this message with arc_sign",
		Apply: noARCSign})
}

// ARCOverride is what a trusted ARC chain says about a DMARC failure.
type ARCOverride = dmarc.ARCOverride

// ARCTrustedDMARCPass is dmarc.TrustedARCPass for the message's chain
// (validated now if it was not yet). The DMARC glue calls it when a
// message fails DMARC, and reports the failure with policy.override=arc
// instead of applying the policy.
func ARCTrustedDMARCPass(ctx context.Context, t *acl.Txn, fromDomain string, trusted func(sealer string) (bool, error)) (ARCOverride, bool, error) {
	c, err := ARCChain(ctx, t)
	if err != nil {
		return ARCOverride{}, false, err
	}
	return dmarc.TrustedARCPass(c, fromDomain, trusted)
}
