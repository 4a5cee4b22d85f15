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
	"slices"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/results"
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

// DKIMWriter is the body consumer of one message's DKIM verification: the
// milter's BodyWriter (Write, End, Abort). End only notes that the body is
// complete: the signatures are verified when the DATA stage first needs
// them, under that run's deadline. Closing the message (the next MAIL, an
// abort, the end of the connection) cancels a verification that DATA
// never finished.
//
// It is the message's results.DKIM itself, so that starting it costs no
// allocation.
type DKIMWriter results.DKIM

// Write takes body bytes with CRLF line ends.
func (w *DKIMWriter) Write(p []byte) (int, error) { return w.Stream.Write(p) }

// End is called at the end of the message, before the DATA ACL runs.
func (w *DKIMWriter) End() error { return nil }

// Abort drops the verification of an aborted message.
func (w *DKIMWriter) Abort() { (*results.DKIM)(w).Abort() }

// StartDKIM starts verifying the DKIM signatures of the transaction's
// message. It is the milter body hook: call it at the end of the header,
// when t.Headers holds every header field with its raw value, then give
// the body to the returned writer. It returns nil when the message has no
// DKIM-Signature (there is then nothing to hash); the message still
// records that it was examined, so that Authentication-Results says
// dkim=none. The close of the message aborts the verification and
// cancels its key lookups (results.DKIM.Abort).
func StartDKIM(t *acl.Txn) *DKIMWriter {
	m := t.Results
	d := &m.DKIM
	d.Examined = true
	signed := false
	for _, h := range t.Headers {
		if strings.EqualFold(h.Name, "DKIM-Signature") {
			signed = true
			break
		}
	}
	if !signed {
		d.Finished = true
		return nil
	}
	v := dkim.Verifier{DNS: t.Services.DNS, MaxSignatures: dkimSettingsOf(t).MaxSignatures, Now: t.Services.Now}
	d.Stream = v.NewStream(context.Background())
	if m.Closed() {
		d.Abort()
	}
	n := 2
	for _, h := range t.Headers {
		n += len(h.Name) + len(h.Value) + 3
	}
	d.Stream.GrowHeader(n)
	for _, h := range t.Headers {
		if err := d.Stream.WriteField(h.Name, h.Value); err != nil {
			break
		}
	}
	_ = d.Stream.EndHeader()
	return (*DKIMWriter)(d)
}

// dkimResults returns the message's DKIM verification, finishing it on
// first use: the lookups still running are bounded by the deadline of the
// ACL run that asks. It is nil for a message whose body was never given
// to StartDKIM; examined says which.
func dkimResults(ctx context.Context, t *acl.Txn) (d *results.DKIM, examined bool) {
	d = &t.Results.DKIM
	if !d.Examined {
		return nil, false
	}
	if !d.Finished {
		d.Finished = true
		// The run's deadline bounds the key queries End waits for: those
		// it runs itself through ctx, those a long body started by
		// cancelling them. Once they are answered, End only computes
		// and the deadline needs no timer for it.
		stop := func() bool { return false }
		if d.Stream.Prefetching() {
			stop = context.AfterFunc(ctx, d.Stream.Cancel)
		}
		d.Err = d.Stream.EndContext(ctx)
		d.Results = d.Stream.Results()
		stop()
		d.Stream.Cancel()
		d.Current = currentSigner(d.Results, t)
	}
	return d, true
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
func dkimHook(ctx context.Context, t *acl.Txn) error {
	d, examined := dkimResults(ctx, t)
	if !examined {
		return nil
	}
	if len(d.Results) == 0 {
		if !d.Aborted {
			t.AuthResults = append(t.AuthResults, acl.AuthResult{Method: "dkim", Result: string(dkim.None), Comment: "no signatures"})
		}
		return nil
	}
	// Appended, not through Txn.AddAuthResult, which would merge
	// identical signatures: every signature is reported.
	t.AuthResults = slices.Grow(t.AuthResults, len(d.Results)+2) // and DMARC's and ARC's
	for _, r := range d.Results {
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
	cur := func(f func(r dkim.Result) string, none string) func(ctx context.Context, t *acl.Txn) (string, error) {
		return func(ctx context.Context, t *acl.Txn) (string, error) {
			d, _ := dkimResults(ctx, t)
			if d == nil || d.Current < 0 {
				return none, nil
			}
			return f(d.Results[d.Current]), nil
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
			Get: func(ctx context.Context, t *acl.Txn) (string, error) {
				d, _ := dkimResults(ctx, t)
				if d == nil {
					return "", nil
				}
				return dkimSigners(d.Results), nil
			}},
	} {
		d.Stages = DKIMStages
		reg.Variable(d)
	}
}
