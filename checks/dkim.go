package checks

// DKIM verification glue: a milter body hook feeds each message's header
// fields and body to a dkim.Stream; the DATA hook finishes the
// verification under the DATA ACL run's context (so key queries get the
// ACL deadline) and reports every signature in Authentication-Results.
//
// Variables outside Exim's per-signer DKIM ACL (sidecar has none) show one
// signature, the "current signer": the first signature that passed and
// whose d= is the From domain or a parent of it, else the first that
// passed, else the first in header order. $dkim_signers lists them all.

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dkim"
)

// OptDKIMMaxSignatures caps the DKIM signatures verified per message.
const OptDKIMMaxSignatures = "dkim_max_signatures"

// DKIMStages are the stages where the DKIM variables have a value: the
// signatures are verified at the end of the message.
const DKIMStages = acl.OnlyData

func init() {
	config.RegisterOption(config.OptionDef{Name: OptDKIMMaxSignatures, Kind: config.KindInt,
		Default: "8", Min: 1, Max: 1000,
		Doc: "the most DKIM signatures verified per message, from the top; the others are reported as policy (\"too many signatures\") and cost nothing"})
}

// dkimSettings are the DKIM options of a compiled configuration.
type dkimSettings struct {
	MaxSignatures int
}

const dkimFeature = "dkim"

func dkimSettingsOf(t *acl.Txn) dkimSettings {
	if s, ok := t.Feature(dkimFeature).(dkimSettings); ok {
		return s
	}
	return dkimSettings{MaxSignatures: dkim.DefaultMaxSignatures}
}

// lateCtx is a context whose parent is chosen after it is created. A
// message's DKIM stream starts at the end of its header, but its key
// queries should run under the deadline of the DATA ACL run, which only
// starts after the body: bind attaches that run's context. Until then the
// context has no deadline (a long body's key queries, which start at
// once, are bounded by the resolver's own timeouts).
type lateCtx struct {
	done   chan struct{}
	mu     sync.Mutex
	parent context.Context
	err    error
	stop   func() bool
}

func newLateCtx() *lateCtx { return &lateCtx{done: make(chan struct{})} }

func (c *lateCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	p := c.parent
	c.mu.Unlock()
	if p != nil {
		return p.Deadline()
	}
	return time.Time{}, false
}

func (c *lateCtx) Done() <-chan struct{} { return c.done }

func (c *lateCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *lateCtx) Value(key any) any {
	c.mu.Lock()
	p := c.parent
	c.mu.Unlock()
	if p != nil {
		return p.Value(key)
	}
	return nil
}

// bind makes the context end when p does.
func (c *lateCtx) bind(p context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parent != nil || c.err != nil {
		return
	}
	c.parent = p
	c.stop = context.AfterFunc(p, func() { c.cancel(p.Err()) })
}

// cancel ends the context with err.
func (c *lateCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// dkimEndGrace is how long a signed message's verification waits after
// the end of its body for the DATA stage to finish it. The milter runs
// DATA right after the body; when it does not (the message failed before
// its ACL ran), the verification is dropped then, so that a streamed
// body's verifier goroutine never waits forever.
var dkimEndGrace = 2 * time.Minute

// dkimState is a message's DKIM verification, kept in the transaction.
// mu guards the verification against the end-of-body timer.
type dkimState struct {
	mu       sync.Mutex
	timer    *time.Timer
	stream   *dkim.Stream // nil when the message has no DKIM-Signature
	ctx      *lateCtx
	aborted  bool
	finished bool
	reported bool
	results  []dkim.Result
	err      error
	cur      int // index of the current signer in results; -1 for none
}

type dkimKey struct{}

// DKIMWriter is the body consumer of one message's DKIM verification: the
// milter's BodyWriter (Write, End, Abort). End only notes that the body is
// complete: the signatures are verified when the DATA stage first needs
// them, under that run's deadline.
type DKIMWriter struct{ st *dkimState }

// Write takes body bytes with CRLF line ends.
func (w *DKIMWriter) Write(p []byte) (int, error) { return w.st.stream.Write(p) }

// End is called at the end of the message, before the DATA ACL runs.
func (w *DKIMWriter) End() error {
	st := w.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.finished && !st.aborted && st.timer == nil {
		st.timer = time.AfterFunc(dkimEndGrace, st.abort)
	}
	return nil
}

// Abort drops the verification of an aborted message.
func (w *DKIMWriter) Abort() { w.st.abort() }

func (st *dkimState) abort() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.finished || st.aborted {
		return
	}
	st.aborted = true
	st.stream.Abort()
	st.ctx.cancel(context.Canceled)
}

// StartDKIM starts verifying the DKIM signatures of the transaction's
// message. It is the milter body hook: call it at the end of the header,
// when t.Headers holds every header field with its raw value, then give
// the body to the returned writer. It returns nil when the message has no
// DKIM-Signature (there is then nothing to hash); the transaction still
// records that the message was examined, so that Authentication-Results
// says dkim=none.
func StartDKIM(t *acl.Txn) *DKIMWriter {
	st := &dkimState{cur: -1}
	t.SetValue(dkimKey{}, st)
	signed := false
	for _, h := range t.Headers {
		if strings.EqualFold(h.Name, "DKIM-Signature") {
			signed = true
			break
		}
	}
	if !signed {
		st.finished = true
		return nil
	}
	v := &dkim.Verifier{DNS: t.Services.DNS, MaxSignatures: dkimSettingsOf(t).MaxSignatures, Now: t.Services.Now}
	st.ctx = newLateCtx()
	st.stream = v.NewStream(st.ctx)
	for _, h := range t.Headers {
		if err := st.stream.WriteField(h.Name, h.Value); err != nil {
			break
		}
	}
	_ = st.stream.EndHeader()
	return &DKIMWriter{st: st}
}

// dkimResults returns the message's DKIM results, finishing the
// verification on first use with the ACL run's context. It is nil for an
// unsigned message and for a transaction whose body was never given to
// StartDKIM; examined says which.
func dkimResults(t *acl.Txn) (st *dkimState, examined bool) {
	st, ok := t.Value(dkimKey{}).(*dkimState)
	if !ok {
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if !st.finished {
		st.finished = true
		if !st.aborted {
			st.ctx.bind(t.Context())
			st.err = st.stream.End()
			st.results = st.stream.Results()
			st.ctx.cancel(context.Canceled)
		}
		st.cur = currentSigner(st.results, t)
	}
	return st, true
}

// currentSigner chooses the signature the variables show: the first pass
// whose d= is the From domain or a parent of it, else the first pass, else
// the first signature.
func currentSigner(rs []dkim.Result, t *acl.Txn) int {
	if len(rs) == 0 {
		return -1
	}
	from, _ := fromDomain(t)
	firstPass := -1
	for i, r := range rs {
		if r.Status != dkim.Pass {
			continue
		}
		if firstPass < 0 {
			firstPass = i
		}
		if from != "" && (from == r.Domain || strings.HasSuffix(from, "."+r.Domain)) {
			return i
		}
	}
	if firstPass >= 0 {
		return firstPass
	}
	return 0
}

// dkimHook reports every signature of the message in
// Authentication-Results at DATA, and dkim=none for an unsigned message
// whose body was examined.
func dkimHook(t *acl.Txn) error {
	st, examined := dkimResults(t)
	if !examined || st.reported {
		return nil
	}
	st.reported = true
	if len(st.results) == 0 {
		if !st.aborted {
			t.AuthResults = append(t.AuthResults, acl.AuthResult{Method: "dkim", Result: string(dkim.None), Comment: "no signatures"})
		}
		return nil
	}
	// Appended, not through Txn.AddAuthResult, which would merge
	// identical signatures: every signature is reported.
	for _, r := range st.results {
		t.AuthResults = append(t.AuthResults, r.AuthResult())
	}
	return nil
}

// dkimSigners is $dkim_signers: the d= domains and i= identities of every
// signature, colon-separated, without duplicates.
func dkimSigners(rs []dkim.Result) string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range rs {
		add(r.Domain)
		if r.Identifier != "@"+r.Domain {
			add(r.Identifier)
		}
	}
	return strings.Join(out, ":")
}

func registerDKIM(reg *acl.Registry) {
	reg.AddConfigurer(acl.Configurer{Name: dkimFeature, Configure: func(cfg *config.Config) (any, error) {
		return dkimSettings{MaxSignatures: int(cfg.Int(OptDKIMMaxSignatures))}, nil
	}})
	cur := func(f func(r dkim.Result) string, none string) func(t *acl.Txn) (string, error) {
		return func(t *acl.Txn) (string, error) {
			st, _ := dkimResults(t)
			if st == nil || st.cur < 0 {
				return none, nil
			}
			return f(st.results[st.cur]), nil
		}
	}
	for _, d := range []acl.VarDef{
		{Name: "dkim_verify_status", Doc: "the DKIM result of the current signer (the first passing signature aligned with From, else the first passing, else the first): pass, fail, policy, temperror, permerror; none when unsigned",
			Get: cur(func(r dkim.Result) string { return string(r.Status) }, string(dkim.None))},
		{Name: "dkim_verify_reason", Doc: "why the current signer's signature did not pass, or empty",
			Get: cur(func(r dkim.Result) string { return r.Reason }, "")},
		{Name: "dkim_cur_signer", Doc: "the signing domain (d=) of the current signer, or empty when unsigned",
			Get: cur(func(r dkim.Result) string { return r.Domain }, "")},
		{Name: "dkim_domain", Doc: "d= of the current signer's signature",
			Get: cur(func(r dkim.Result) string { return r.Domain }, "")},
		{Name: "dkim_selector", Doc: "s= of the current signer's signature",
			Get: cur(func(r dkim.Result) string { return r.Selector }, "")},
		{Name: "dkim_algo", Doc: "a= of the current signer's signature, such as rsa-sha256 or ed25519-sha256",
			Get: cur(func(r dkim.Result) string { return r.Algorithm }, "")},
		{Name: "dkim_identity", Doc: "i= of the current signer's signature (@ and d= when absent)",
			Get: cur(func(r dkim.Result) string { return r.Identifier }, "")},
		{Name: "dkim_signers", Doc: "the domains (d=) and identities (i=) of every signature, colon-separated, whatever their result",
			Get: func(t *acl.Txn) (string, error) {
				st, _ := dkimResults(t)
				if st == nil {
					return "", nil
				}
				return dkimSigners(st.results), nil
			}},
	} {
		d.Stages = DKIMStages
		reg.Variable(d)
	}
	reg.AddHook(acl.Hook{Name: "dkim", Stages: acl.OnlyData, Run: dkimHook})
}
