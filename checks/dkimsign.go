package checks

// DKIM signing glue (the Exim options dkim_domain, dkim_selector,
// dkim_private_key, dkim_canon, dkim_sign_headers, dkim_hash,
// dkim_timestamps and dkim_strict; the controls dkim_sign and
// dkim_disable_sign).
//
// The options are expansions, compiled when the configuration loads (a
// mistake is a load-time error at the option) and evaluated per message
// when its body begins: go-msgauth's signer needs the domain, selector
// and key before the first body byte, and hashes the body as it streams
// past, so nothing of the body is kept. By then the header is complete
// and the connect, HELO, MAIL and RCPT ACLs have run; variables set in the
// DATA ACL come too late for these expansions.
//
// Which messages: a client that authenticated (SMTP AUTH) and a local
// submission (no client address: Postfix non_smtpd_milters, the sendmail
// command) are signed; mail that arrives from outside is not, unless an
// ACL says "control = dkim_sign" before DATA. "control = dkim_disable_sign"
// anywhere, DATA included, stops it.
//
// The signatures are finished after the DATA ACL accepted the message (an
// acl.AcceptHook): they see its verdict and its edits, and go out as
// :at_start: fields in the same write as the other header edits. A
// signature covers the header as received; an ACL that adds or removes a
// field it covers would break it, so it is then not added (and logged).
//
// dkim_strict false (the default, Exim's): a signature that cannot be
// made (a key file missing, an expansion failing) is logged and the
// message leaves without it. dkim_strict true: the message defers.

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/expand"
	"github.com/mailsidecar/sidecar/results"
)

// The main options of DKIM signing, Exim's names.
const (
	OptDKIMDomain      = "dkim_domain"
	OptDKIMSelector    = "dkim_selector"
	OptDKIMPrivateKey  = "dkim_private_key"
	OptDKIMCanon       = "dkim_canon"
	OptDKIMSignHeaders = "dkim_sign_headers"
	OptDKIMHash        = "dkim_hash"
	OptDKIMTimestamps  = "dkim_timestamps"
	OptDKIMStrict      = "dkim_strict"
)

// MaxDKIMSignatures bounds the signatures made per message (domains times
// selectors).
const MaxDKIMSignatures = 8

// maxCachedKeys bounds the key cache of one configuration.
const maxCachedKeys = 4096

func init() {
	for _, d := range []config.OptionDef{
		{Name: OptDKIMDomain, Kind: config.KindString, Default: "",
			Doc: "expanded per message: the signing domains (d=), colon-separated; empty: do not sign. For example ${lc:${domain:$h_from:}}"},
		{Name: OptDKIMSelector, Kind: config.KindString, Default: "",
			Doc: "expanded per domain ($dkim_domain): the selectors (s=), colon-separated; one signature per selector (RSA and Ed25519 side by side)"},
		{Name: OptDKIMPrivateKey, Kind: config.KindString, Default: "",
			Doc: "expanded per signature ($dkim_domain, $dkim_selector): an absolute key file path, or the PEM key itself; empty, 0 or false: no signature for that selector"},
		{Name: OptDKIMCanon, Kind: config.KindString, Default: "relaxed",
			Doc: "expanded: the canonicalization, relaxed or simple (header and body), or HEADER/BODY"},
		{Name: OptDKIMSignHeaders, Kind: config.KindString, Default: "",
			Doc: "expanded: the fields to sign, colon-separated, +Name to over-sign, =Name for every field present; empty: From and the others RFC 6376 recommends, over-signed"},
		{Name: OptDKIMHash, Kind: config.KindString, Default: "sha256",
			Doc: "expanded: the hash algorithm; sha256 (sha1 is refused, RFC 8301)"},
		{Name: OptDKIMTimestamps, Kind: config.KindString, Default: "",
			Doc: "expanded: seconds from now for the signature's expiry (x=); empty: no x="},
		{Name: OptDKIMStrict, Kind: config.KindBool, Default: "false",
			Doc: "defer a message whose signature cannot be made (missing key, failed expansion) instead of sending it unsigned"},
	} {
		config.RegisterOption(d)
	}
}

// dkimSignFeature names the signing settings on a compiled acl.Program.
const dkimSignFeature = "dkim_sign"

// The controls.
const (
	ctlDKIMSign        = "dkim_sign"
	ctlDKIMDisableSign = "dkim_disable_sign"
)

// dkimSignOption is one compiled option.
type dkimSignOption struct {
	name string
	expr *expand.Expr
	pos  config.Pos
}

// DKIMSigning is the compiled signing configuration.
type DKIMSigning struct {
	domain, selector, key, canon, headers, hash, timestamps dkimSignOption
	strict                                                  bool
	limits                                                  expand.Limits
	keys                                                    *signKeys
}

func dkimSigningOf(t *acl.Txn) *DKIMSigning {
	s, _ := t.Feature(dkimSignFeature).(*DKIMSigning)
	return s
}

// DKIMSigningFrom compiles the signing options of cfg with the variables
// of reg. It returns nil when dkim_domain is not set (the other options
// are checked all the same). Constant values are
// checked now (a key file is read), so that their mistakes are load-time
// errors at the option.
func DKIMSigningFrom(cfg *config.Config, reg *acl.Registry) (*DKIMSigning, error) {
	var errs config.ErrorList
	fail := func(pos config.Pos, format string, args ...any) {
		errs = append(errs, cfg.ErrorAt(pos, format, args...))
	}
	s := &DKIMSigning{strict: cfg.Bool(OptDKIMStrict), keys: &signKeys{m: map[string]crypto.Signer{}},
		limits: expand.Limits{MaxOutput: int(cfg.Int("expansion_max_size"))}}
	signVar := func(allowDomain, allowSelector bool) func(string) (expand.Getter, bool, error) {
		return func(name string) (expand.Getter, bool, error) {
			switch name {
			case "dkim_domain":
				if !allowDomain {
					return nil, false, errors.New("$dkim_domain is the signing domain, which dkim_domain itself sets")
				}
				return func(_ context.Context, env expand.Env) (string, error) {
					return env.(*acl.Txn).Results.DKIMSign.Domain, nil
				}, true, nil
			case "dkim_selector":
				if !allowSelector {
					return nil, false, errors.New("$dkim_selector is the selector, known in dkim_private_key, dkim_canon, dkim_sign_headers, dkim_hash and dkim_timestamps only")
				}
				return func(_ context.Context, env expand.Env) (string, error) {
					return env.(*acl.Txn).Results.DKIMSign.Selector, nil
				}, true, nil
			}
			return nil, false, nil
		}
	}
	compile := func(name string, dom, sel bool) dkimSignOption {
		o := dkimSignOption{name: name, pos: cfg.Get(name).Value.Pos}
		e, err := reg.CompileOption(cfg, name, acl.OnlyData, signVar(dom, sel))
		if err != nil {
			errs = append(errs, config.AsList(err)...)
			return o
		}
		o.expr = e
		return o
	}
	s.domain = compile(OptDKIMDomain, false, false)
	s.selector = compile(OptDKIMSelector, true, false)
	s.key = compile(OptDKIMPrivateKey, true, true)
	s.canon = compile(OptDKIMCanon, true, true)
	s.headers = compile(OptDKIMSignHeaders, true, true)
	s.hash = compile(OptDKIMHash, true, true)
	s.timestamps = compile(OptDKIMTimestamps, true, true)
	signing := strings.TrimSpace(cfg.Get(OptDKIMDomain).Value.Text) != ""
	if signing && strings.TrimSpace(cfg.Get(OptDKIMSelector).Value.Text) == "" {
		fail(cfg.Get(OptDKIMDomain).Value.Pos, "%s is set but %s is not: every signature needs a selector (for example: %s = mail2025)", OptDKIMDomain, OptDKIMSelector, OptDKIMSelector)
	}
	if signing && strings.TrimSpace(cfg.Get(OptDKIMPrivateKey).Value.Text) == "" {
		fail(cfg.Get(OptDKIMDomain).Value.Pos, "%s is set but %s is not (for example: %s = /etc/sidecar/dkim/${dkim_domain}.${dkim_selector}.pem)", OptDKIMDomain, OptDKIMPrivateKey, OptDKIMPrivateKey)
	}
	// Constant values are checked now.
	constItems := func(o dkimSignOption, check func(item string) error) {
		if o.expr == nil {
			return
		}
		text, ok := o.expr.Constant()
		if !ok {
			return
		}
		for _, it := range config.SplitList(config.NewValue(text, o.pos)) {
			if err := check(it.Text); err != nil {
				fail(cfg.Get(o.name).Value.PosAt(it.Off), "%s: %v", o.name, err)
			}
		}
	}
	constItems(s.domain, func(d string) error { return arc.CheckDomain(d) })
	constItems(s.selector, func(sel string) error { return arc.CheckSelector(sel) })
	constValue := func(o dkimSignOption, check func(string) error) {
		if o.expr == nil {
			return
		}
		if text, ok := o.expr.Constant(); ok {
			if err := check(text); err != nil {
				fail(o.pos, "%s: %v", o.name, err)
			}
		}
	}
	constValue(s.canon, func(v string) error { _, _, err := parseDKIMCanon(v); return err })
	constValue(s.hash, checkDKIMHash)
	constValue(s.timestamps, func(v string) error { _, err := parseDKIMTimestamps(v); return err })
	constItems(s.headers, func(h string) error {
		if h == "" {
			return nil
		}
		_, err := dkim.ParseSignHeader(h)
		return err
	})
	constValue(s.key, func(v string) error {
		if noKey(v) {
			return nil
		}
		_, err := s.keys.get(v)
		return err
	})
	if len(errs) > 0 {
		return nil, errs
	}
	if !signing {
		return nil, nil
	}
	return s, nil
}

// parseDKIMCanon reads dkim_canon: relaxed, simple, or HEADER/BODY.
func parseDKIMCanon(v string) (header, body string, err error) {
	v = strings.ToLower(strings.TrimSpace(v))
	header, body, split := strings.Cut(v, "/")
	if !split {
		body = header
	}
	for _, c := range []string{header, body} {
		if c != "relaxed" && c != "simple" {
			return "", "", fmt.Errorf("%q is not a canonicalization: relaxed, simple, or HEADER/BODY such as relaxed/simple", v)
		}
	}
	return header, body, nil
}

func checkDKIMHash(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "sha256", "":
		return nil
	case "sha1":
		return errors.New("sha1 is refused for signing (RFC 8301): use sha256")
	}
	return fmt.Errorf("%q is not supported: sha256", v)
}

func parseDKIMTimestamps(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds (for example 1209600, two weeks)", v)
	}
	return time.Duration(n) * time.Second, nil
}

// noKey: a dkim_private_key of "", 0 or false means no signature (as in
// Exim).
func noKey(spec string) bool {
	switch strings.ToLower(strings.TrimSpace(spec)) {
	case "", "0", "false":
		return true
	}
	return false
}

// signKeys reads private keys by the expanded dkim_private_key and keeps
// them for the configuration's life (a reload, SIGHUP, reads them again).
// A key that cannot be read is not kept: it is tried again next time.
type signKeys struct {
	mu sync.Mutex
	m  map[string]crypto.Signer
}

// get returns the key of an expanded dkim_private_key: an absolute file
// path, or the PEM key itself.
func (k *signKeys) get(spec string) (crypto.Signer, error) {
	spec = strings.TrimSpace(spec)
	k.mu.Lock()
	key, ok := k.m[spec]
	k.mu.Unlock()
	if ok {
		return key, nil
	}
	var data []byte
	what := "the key"
	switch {
	case strings.HasPrefix(spec, "-----BEGIN"):
		data = []byte(spec)
	case strings.HasPrefix(spec, "/"):
		var err error
		if data, err = os.ReadFile(spec); err != nil {
			return nil, fmt.Errorf("cannot read the key file: %w", err)
		}
		what = spec
	default:
		return nil, fmt.Errorf("%q is neither an absolute key file path nor a PEM key", truncateText(spec, 60))
	}
	key, err := arc.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a usable signing key: %v (a PEM RSA key of at least 1024 bits, or an Ed25519 key)", what, err)
	}
	if err := arc.CheckSigningKey(key); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	k.mu.Lock()
	if len(k.m) < maxCachedKeys {
		k.m[spec] = key
	}
	k.mu.Unlock()
	return key, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// dkimSignExpandTimeout bounds the expansion of the dkim_* options of one
// message, which happens at the end of its header, outside any ACL run.
const dkimSignExpandTimeout = 10 * time.Second

// dkimSignWanted says whether the message in t is to be signed: the
// controls first (the message's, then the connection's), then the
// default: authenticated clients and local submissions.
func dkimSignWanted(t *acl.Txn) bool {
	for _, controls := range []acl.Controls{t.Controls, t.Conn.Controls} {
		if _, off := controls.Get(ctlDKIMDisableSign); off {
			return false
		}
		if _, on := controls.Get(ctlDKIMSign); on {
			return true
		}
	}
	return t.Conn.AuthID != "" || !t.Conn.ClientIP.IsValid()
}

// DKIMSignBody starts the signatures of the message in t when its header
// is complete: the milter body hook. It returns nil when there is nothing
// to sign; what could not be started is noted for the end of the message.
func DKIMSignBody(t *acl.Txn) *DKIMSignWriter {
	s := dkimSigningOf(t)
	if s == nil || !dkimSignWanted(t) {
		return nil
	}
	m := &t.Results.DKIMSign
	m.Started = true
	s.start(t, m)
	if len(m.Streams) == 0 {
		return nil
	}
	w := &DKIMSignWriter{m: m}
	t.Results.OnClose(w.Abort)
	return w
}

func (s *DKIMSigning) eval(ctx context.Context, t *acl.Txn, o dkimSignOption) (string, error) {
	v, err := o.expr.EvalLimits(ctx, t, s.limits)
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.name, err)
	}
	return v, nil
}

// start evaluates the options and starts one stream per domain and
// selector.
func (s *DKIMSigning) start(t *acl.Txn, m *results.DKIMSign) {
	// The body hook runs outside any ACL run: the expansions (file
	// lookups, say) get a deadline of their own.
	ctx, cancel := context.WithTimeout(context.Background(), dkimSignExpandTimeout)
	defer cancel()
	problem := func(err error) { m.Problems = append(m.Problems, err) }
	domains, err := s.eval(ctx, t, s.domain)
	if err != nil {
		problem(err)
		return
	}
	var fields []dkim.HeaderField
	for _, h := range t.Headers {
		fields = append(fields, dkim.HeaderField{Name: h.Name, Value: h.Value})
	}
	defer func() { m.Domain, m.Selector = "", "" }()
	for _, d := range config.SplitList(config.NewValue(domains, config.Pos{})) {
		domain := strings.ToLower(strings.TrimSpace(d.Text))
		if domain == "" {
			continue // an empty expansion: do not sign, as in Exim
		}
		if err := arc.CheckDomain(domain); err != nil {
			problem(fmt.Errorf("%s: %w", OptDKIMDomain, err))
			continue
		}
		m.Domain, m.Selector = domain, ""
		sels, err := s.eval(ctx, t, s.selector)
		if err != nil {
			problem(fmt.Errorf("%s: %w", domain, err))
			continue
		}
		for _, it := range config.SplitList(config.NewValue(sels, config.Pos{})) {
			sel := strings.TrimSpace(it.Text)
			if sel == "" {
				continue
			}
			name := domain + ":" + sel
			if err := arc.CheckSelector(sel); err != nil {
				problem(fmt.Errorf("%s: %s: %w", name, OptDKIMSelector, err))
				continue
			}
			if len(m.Streams) >= MaxDKIMSignatures {
				problem(fmt.Errorf("%s: more than %d signatures for one message", name, MaxDKIMSignatures))
				return
			}
			m.Selector = sel
			st, err := s.startOne(ctx, t, domain, sel, fields)
			switch {
			case err != nil:
				problem(fmt.Errorf("%s: %w", name, err))
			case st != nil:
				m.Streams = append(m.Streams, st)
				m.Names = append(m.Names, name)
			}
		}
	}
}

// startOne starts the signature of domain and selector; nil without an
// error when dkim_private_key says not to sign with it.
func (s *DKIMSigning) startOne(ctx context.Context, t *acl.Txn, domain, sel string, fields []dkim.HeaderField) (*dkim.SignStream, error) {
	keySpec, err := s.eval(ctx, t, s.key)
	if err != nil {
		return nil, err
	}
	if noKey(keySpec) {
		return nil, nil
	}
	key, err := s.keys.get(keySpec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", OptDKIMPrivateKey, err)
	}
	o := dkim.SignOptions{Domain: domain, Selector: sel, Key: key}
	text, err := s.eval(ctx, t, s.canon)
	if err != nil {
		return nil, err
	}
	if o.HeaderCanon, o.BodyCanon, err = parseDKIMCanon(text); err != nil {
		return nil, fmt.Errorf("%s: %w", OptDKIMCanon, err)
	}
	if text, err = s.eval(ctx, t, s.hash); err != nil {
		return nil, err
	}
	if err := checkDKIMHash(text); err != nil {
		return nil, fmt.Errorf("%s: %w", OptDKIMHash, err)
	}
	if text, err = s.eval(ctx, t, s.timestamps); err != nil {
		return nil, err
	}
	ttl, err := parseDKIMTimestamps(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", OptDKIMTimestamps, err)
	}
	if ttl > 0 {
		o.Expiration = time.Now().Add(ttl) // go-msgauth takes t= from the system clock
	}
	if text, err = s.eval(ctx, t, s.headers); err != nil {
		return nil, err
	}
	for _, it := range config.SplitList(config.NewValue(text, config.Pos{})) {
		if strings.TrimSpace(it.Text) == "" {
			continue
		}
		h, err := dkim.ParseSignHeader(it.Text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", OptDKIMSignHeaders, err)
		}
		o.Headers = append(o.Headers, h)
	}
	return dkim.NewSignStream(o, fields)
}

// DKIMSignWriter gives the body to the message's signatures.
type DKIMSignWriter struct{ m *results.DKIMSign }

// Write hashes body data (CRLF line ends). A signature that fails is
// dropped and noted; the others go on.
func (w *DKIMSignWriter) Write(p []byte) (int, error) {
	for i, st := range w.m.Streams {
		if st == nil {
			continue
		}
		if _, err := st.Write(p); err != nil {
			w.m.Problems = append(w.m.Problems, fmt.Errorf("%s: %w", w.m.Names[i], err))
			st.Abort()
			w.m.Streams[i] = nil
		}
	}
	return len(p), nil
}

// End is called at the end of the body; the signatures are finished
// after the DATA ACL accepted the message.
func (w *DKIMSignWriter) End() error { return nil }

// Abort drops the signatures of a message that did not end or was not
// accepted: no private-key operation is made.
func (w *DKIMSignWriter) Abort() {
	for _, st := range w.m.Streams {
		if st != nil {
			st.Abort()
		}
	}
}

// dkimSignAccepted finishes the signatures of an accepted message and
// adds them on top (the accept hook). Under dkim_strict a signature that
// could not be made defers the message.
func dkimSignAccepted(_ context.Context, t *acl.Txn) error {
	s := dkimSigningOf(t)
	m := &t.Results.DKIMSign
	if s == nil || !m.Started {
		return nil
	}
	abortAll := func() {
		for _, st := range m.Streams {
			if st != nil {
				st.Abort()
			}
		}
	}
	if !dkimSignWanted(t) { // control = dkim_disable_sign at DATA
		abortAll()
		return nil
	}
	for i, st := range m.Streams {
		if st == nil {
			continue
		}
		if name, ok := dkimEditConflict(t, st); ok {
			m.Problems = append(m.Problems, fmt.Errorf("%s: not signed: the DATA ACL adds or removes %s, which the signature covers (leave it out of %s)", m.Names[i], name, OptDKIMSignHeaders))
			st.Abort()
			m.Streams[i] = nil
		}
	}
	if s.strict && len(m.Problems) > 0 {
		abortAll()
		return fmt.Errorf("not signed (dkim_strict): %w", errors.Join(m.Problems...))
	}
	for _, err := range m.Problems {
		t.Logs = append(t.Logs, acl.LogLine{Stage: acl.Data, ACL: "(dkim_sign)", Kind: "error", Text: err.Error() + "; sent without this signature"})
	}
	var added []acl.AddedHeader
	for i, st := range m.Streams {
		if st == nil {
			continue
		}
		field, err := st.Finish()
		if err != nil {
			if s.strict {
				abortAll()
				return fmt.Errorf("%s: %w", m.Names[i], err)
			}
			t.Logs = append(t.Logs, acl.LogLine{Stage: acl.Data, ACL: "(dkim_sign)", Kind: "error", Text: m.Names[i] + ": " + err.Error() + "; sent without this signature"})
			continue
		}
		added = append(added, acl.AddedHeader{Text: field, AtStart: true})
		m.Signed = append(m.Signed, m.Names[i])
	}
	t.AddHeaders = append(t.AddHeaders, added...)
	return nil
}

// dkimEditConflict returns a field name the signature covers that the
// ACLs add or remove.
func dkimEditConflict(t *acl.Txn, st *dkim.SignStream) (string, bool) {
	for _, name := range t.RemoveHeaders {
		if st.Signs(name) && len(t.Header(name)) > 0 {
			return name, true
		}
	}
	for _, ah := range t.AddHeaders {
		for _, line := range strings.Split(ah.Text, "\n") {
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			if name, _, ok := strings.Cut(line, ":"); ok && st.Signs(strings.TrimSpace(name)) {
				return strings.TrimSpace(name), true
			}
		}
	}
	return "", false
}

// registerDKIMSign adds the signing configuration reader, the controls,
// the body hook and the accept hook.
func registerDKIMSign(reg *acl.Registry) {
	reg.AddConfigurer(acl.Configurer{Name: dkimSignFeature, Configure: func(cfg *config.Config) (any, error) {
		s, err := DKIMSigningFrom(cfg, reg)
		if err != nil || s == nil {
			return nil, err
		}
		return s, nil
	}})
	set := func(on, off string) func(t *acl.Txn, arg string) error {
		return func(t *acl.Txn, _ string) error {
			if t.Stage == acl.Connect || t.Stage == acl.Helo {
				t.Conn.Controls.Delete(off)
				t.Conn.SetControl(on, "")
			}
			t.Controls.Delete(off)
			t.SetControl(on, "")
			return nil
		}
	}
	reg.Control(acl.ControlDef{Name: ctlDKIMSign, Stages: acl.Of(acl.Connect, acl.Helo, acl.Mail, acl.Rcpt), Arg: acl.ArgNone,
		Doc:   "sign this message with dkim_domain even if the client is neither authenticated nor local (at CONNECT or HELO: every message of the connection); before DATA, as the body is hashed as it arrives",
		Apply: set(ctlDKIMSign, ctlDKIMDisableSign)})
	reg.Control(acl.ControlDef{Name: ctlDKIMDisableSign, Arg: acl.ArgNone,
		Doc:   "do not DKIM-sign this message (at CONNECT or HELO: the connection's messages)",
		Apply: set(ctlDKIMDisableSign, ctlDKIMSign)})
	reg.AddBodyHook(acl.BodyHook{Name: "dkim_sign", Start: func(t *acl.Txn) acl.BodyWriter {
		if w := DKIMSignBody(t); w != nil {
			return w
		}
		return nil
	}})
	reg.AddAcceptHook(acl.AcceptHook{Name: "dkim_sign", Run: dkimSignAccepted})
}
