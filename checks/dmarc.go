package checks

// DMARC glue: the dmarc_status condition, the $dmarc_* variables, the
// dmarc_disable_verify and dmarc_enable_forensic controls, the DATA hook
// that reports DMARC in Authentication-Results, and the main options.
//
// DMARC is evaluated once per message, at first use: the DATA hook (when
// dmarc_authres is true, the default), a dmarc_status condition or a
// $dmarc_* variable, whichever comes first. It takes the SPF check of the
// MAIL FROM identity (HELO for <>) from the SPF glue's cached check and
// the DKIM results of the body hook.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/results"
)

// The main options of the DMARC feature.
const (
	OptDMARCDiscovery      = "dmarc_discovery"
	OptDMARCTLDFile        = "dmarc_tld_file"
	OptDMARCHistoryFile    = "dmarc_history_file"
	OptDMARCHistoryFormat  = "dmarc_history_format"
	OptDMARCForensicSender = "dmarc_forensic_sender"
	OptDMARCAuthRes        = "dmarc_authres"
	OptDMARCARCTrusted     = "dmarc_arc_trusted_sealers"
)

// DMARCStages are the stages of the dmarc_status condition and the
// $dmarc_* variables: DMARC needs the From header and the DKIM results.
const DMARCStages = acl.OnlyData

// DMARCControlStages are where the DMARC controls may be used: before the
// DATA ACL, as Exim's documentation says.
var DMARCControlStages = acl.Of(acl.Connect, acl.Helo, acl.Mail, acl.Rcpt)

// DMARCWords are the result words of the dmarc_status condition.
var DMARCWords = []string{
	string(dmarc.StatusAccept), string(dmarc.StatusReject), string(dmarc.StatusQuarantine), string(dmarc.StatusNone),
	string(dmarc.StatusNoRecord), string(dmarc.StatusNoFrom), string(dmarc.StatusTempError), string(dmarc.StatusOff),
}

func init() {
	for _, d := range []config.OptionDef{
		{Name: OptDMARCDiscovery, Kind: config.KindEnum, Default: "treewalk", Enum: []string{"treewalk", "psl"},
			Doc: "how DMARC policy records and organizational domains are found: treewalk (RFC 9989 DNS tree walk) or psl (RFC 7489, Public Suffix List)"},
		{Name: OptDMARCTLDFile, Kind: config.KindPath,
			Doc: "public suffix list file (public_suffix_list.dat) for dmarc_discovery = psl, read at start and on SIGHUP; default: the list built into sidecar"},
		{Name: OptDMARCHistoryFile, Kind: config.KindPath,
			Doc: "file to append one OpenDMARC-format record to for every message DMARC evaluated, for opendmarc-import (aggregate reports); reopened on SIGHUP"},
		{Name: OptDMARCHistoryFormat, Kind: config.KindEnum, Default: string(report.FormatOpenDMARC), Enum: report.HistoryFormats,
			Doc: "format of dmarc_history_file: opendmarc (OpenDMARC 1.4's records, for opendmarc-import) or sidecar (the same records followed by the SPF domain and scope, recipient domains, np, psd, t, fo, ruf and override reasons that sidecar report needs)"},
		{Name: OptDMARCForensicSender, Kind: config.KindString,
			Doc: "From and envelope sender of DMARC failure reports (control = dmarc_enable_forensic), expanded per message; default: do-not-reply@primary_hostname"},
		{Name: OptDMARCARCTrusted, Kind: config.KindDomainList,
			Doc: "ARC sealers (domain list) whose chain may override a DMARC failure: a passing ARC chain whose earliest trusted ARC-Authentication-Results shows dmarc=pass turns the policy into none (policy.override=arc)"},
		{Name: OptDMARCAuthRes, Kind: config.KindBool, Default: "true",
			Doc: "evaluate DMARC at DATA for every message and report it in Authentication-Results (dmarc=... header.from=...)"},
	} {
		config.RegisterOption(d)
	}
}

// dmarcSettings are the DMARC options of a compiled configuration, kept
// on its Program.
type dmarcSettings struct {
	Discovery     dmarc.Mode
	PSL           *dmarc.PSL // nil: the embedded list
	HistoryPath   string
	HistoryFormat report.HistoryFormat
	AuthRes       bool
	// forensic are the failure report options.
	forensic forensicSettings
	// hist is the history file while the Program is attached.
	hist atomic.Pointer[report.HistorySink]
	// trustedSealers is dmarc_arc_trusted_sealers, nil when unset.
	trustedSealers *acl.List
}

const dmarcFeature = "dmarc"

var defaultDMARCSettings = &dmarcSettings{AuthRes: true}

func dmarcSettingsOf(t *acl.Txn) *dmarcSettings {
	if s, ok := t.Feature(dmarcFeature).(*dmarcSettings); ok {
		return s
	}
	return defaultDMARCSettings
}

// dmarcSettingsFrom reads the DMARC options; the PSL file is loaded now,
// so a bad file is a configuration error (at start, or a failed reload).
func dmarcSettingsFrom(cfg *config.Config) (*dmarcSettings, error) {
	s := &dmarcSettings{
		HistoryPath:   cfg.String(OptDMARCHistoryFile),
		HistoryFormat: report.HistoryFormat(cfg.String(OptDMARCHistoryFormat)),
		AuthRes:       cfg.Bool(OptDMARCAuthRes),
	}
	s.Discovery, _ = dmarc.ParseMode(cfg.String(OptDMARCDiscovery))
	var errs config.ErrorList
	fail := func(opt, format string, args ...any) {
		errs = append(errs, cfg.ErrorAt(cfg.Get(opt).Value.Pos, format, args...))
	}
	if path := s.HistoryPath; path != "" {
		// The file itself is created at the first record, not by a
		// check; its directory must exist now.
		if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
			fail(OptDMARCHistoryFile, "%s: the directory %s does not exist", OptDMARCHistoryFile, filepath.Dir(path))
		}
	}
	// RFC 7489's report format describes RFC 7489's evaluation (the
	// Public Suffix List, pct=): a tree-walk deployment's reports would
	// say what it did not do.
	if cfg.String(report.OptDMARCReportFormat) == report.ReportFormatRFC7489 && s.Discovery != dmarc.PSLMode {
		fail(report.OptDMARCReportFormat, "%s = %s needs %s = psl (RFC 7489 reports describe RFC 7489's evaluation); with the DNS tree walk write %s = %s",
			report.OptDMARCReportFormat, report.ReportFormatRFC7489, OptDMARCDiscovery, report.OptDMARCReportFormat, report.ReportFormatRFC9990)
	}
	if s.HistoryFormat != report.FormatOpenDMARC && s.HistoryPath == "" && cfg.Reporter != nil {
		cfg.Reporter.Warnf(cfg.Get(OptDMARCHistoryFormat).Value.Pos, "%s is only used with %s", OptDMARCHistoryFormat, OptDMARCHistoryFile)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if v := cfg.Get(OptDMARCARCTrusted).Value; strings.TrimSpace(v.Text) != "" {
		l, err := acl.CompileList(cfg, config.DomainList, v)
		if err != nil {
			return nil, err
		}
		s.trustedSealers = l
	}
	if path := cfg.String(OptDMARCTLDFile); path != "" {
		pos := cfg.Get(OptDMARCTLDFile).Value.Pos
		if s.Discovery != dmarc.PSLMode {
			if cfg.Reporter != nil {
				cfg.Reporter.Warnf(pos, "%s is only used with %s = psl; the DNS tree walk needs no list", OptDMARCTLDFile, OptDMARCDiscovery)
			}
		} else {
			psl, err := dmarc.LoadPSL(path)
			if err != nil {
				return nil, config.ErrorList{cfg.ErrorAt(pos, "%s: %v", OptDMARCTLDFile, err)}
			}
			s.PSL = psl
		}
	}
	return s, nil
}

// fromDomain is the message's Author Domain, parsed once.
func fromDomain(t *acl.Txn) (string, error) {
	f := &t.Results.From
	if !f.Known {
		f.Domain, f.Err = dmarc.FromDomain(t.Header("From"))
		f.Known = true
	}
	return f.Domain, f.Err
}

// dmarcDisabled says why DMARC is off for the transaction, or "".
func dmarcDisabled(t *acl.Txn) string {
	if _, ok := t.Control("dmarc_disable_verify"); ok {
		return "DMARC verification disabled (control = dmarc_disable_verify)"
	}
	if _, off := t.Conn.Control("dmarc_disable_verify"); off {
		return "DMARC verification disabled for the connection (control = dmarc_disable_verify)"
	}
	if !t.Conn.ClientIP.IsValid() {
		return "DMARC not checked for a local submission"
	}
	if t.Conn.AuthID != "" {
		return "DMARC not checked for an authenticated client"
	}
	return ""
}

// dmarcOf returns the message's DMARC evaluation, evaluating it on first
// use with the ACL run's context.
func dmarcOf(ctx context.Context, t *acl.Txn) *results.DMARC {
	if e := t.Results.DMARC; e != nil {
		return e
	}
	e := evaluateDMARC(ctx, t)
	t.Results.DMARC = e
	return e
}

func evaluateDMARC(ctx context.Context, t *acl.Txn) *results.DMARC {
	e := &results.DMARC{}
	if why := dmarcDisabled(t); why != "" {
		e.Outcome = dmarc.Disabled()
		e.Outcome.StatusText = why
		return e
	}
	s := dmarcSettingsOf(t)
	e.Input.FromDomain, e.Input.FromErr = fromDomain(t)
	if t.HasSender {
		spfEval := check(ctx, t, "", false)
		e.Input.SPF = dmarc.SPFResult{Result: string(spfEval.Outcome.Result), Domain: spfEval.Outcome.Domain}
	}
	if d, _ := dkimResults(ctx, t); d != nil {
		for _, r := range d.Results {
			e.Input.DKIM = append(e.Input.DKIM, dmarc.DKIMResult{Result: string(r.Status), Domain: r.Domain, Selector: r.Selector})
		}
	}
	ev := dmarc.Evaluator{DNS: t.Services.DNS, Discovery: s.Discovery, PSL: s.PSL}
	e.Outcome = ev.Evaluate(ctx, e.Input)
	if e.Outcome.Result == dmarc.Fail && s.trustedSealers != nil {
		trusted := func(sealer string) (bool, error) {
			return s.trustedSealers.Match(t, strings.ToLower(strings.TrimSuffix(sealer, ".")))
		}
		ov, ok, err := ARCTrustedDMARCPass(ctx, t, e.Input.FromDomain, trusted)
		switch {
		case err != nil:
			t.Logs = append(t.Logs, acl.LogLine{Stage: t.Stage, ACL: "(dmarc)", Kind: "error",
				Text: "DMARC ARC override not checked: " + err.Error()})
		case ok:
			// RFC 9989 local policy (RFC 8617 §7.2): a trusted
			// intermediary saw DMARC pass before it changed the message.
			e.Override = &ov
			e.Outcome.Disposition, e.Outcome.Action = dmarc.PolicyNone, dmarc.PolicyNone
			e.Outcome.Status = dmarc.StatusNone
			e.Outcome.StatusText = fmt.Sprintf("None, accept (%s=%s overridden by trusted ARC sealer %s, i=%d)",
				e.Outcome.PolicyTag, e.Outcome.Policy, ov.Sealer, ov.Instance)
		}
	}
	if _, q := t.Control("quarantine"); q && e.Outcome.Result == dmarc.Fail && e.Override == nil {
		e.Outcome.Action = dmarc.PolicyQuarantine
	}
	return e
}

// authservID is the authserv-id of our Authentication-Results header.
func authservID(t *acl.Txn) string {
	if t.Services.AuthservID != "" {
		return t.Services.AuthservID
	}
	return t.Services.PrimaryHostname
}

// dmarcHook evaluates DMARC for every message at DATA and adds it to
// Authentication-Results, unless dmarc_authres is false or DMARC is off.
// A transaction without any header field (an ACL test, not a message) is
// left alone.
func dmarcHook(ctx context.Context, t *acl.Txn) error {
	if !dmarcSettingsOf(t).AuthRes || !t.HasSender || len(t.Headers) == 0 {
		return nil
	}
	e := dmarcOf(ctx, t)
	if ar, ok := e.AuthResult(); ok {
		if e.Override != nil {
			ar.Props = append(slices.Clip(ar.Props), acl.AuthProp{Type: "policy", Name: "override", Value: "arc"})
		}
		t.AddAuthResult(ar)
	}
	return nil
}

func registerDMARC(reg *acl.Registry) {
	reg.AddConfigurer(acl.Configurer{Name: dmarcFeature, Configure: func(cfg *config.Config) (any, error) {
		s, err := dmarcSettingsFrom(cfg)
		ferr := error(nil)
		if s != nil {
			s.forensic, ferr = forensicSettingsFrom(reg, cfg)
		}
		if err := errors.Join(err, ferr); err != nil {
			return nil, err
		}
		return s, nil
	}})
	reg.Condition(acl.CondDef{Name: "dmarc_status", Stages: DMARCStages,
		Doc: "the DMARC status of the message is in the list: accept reject quarantine none norecord nofrom temperror off (! inverts an item)",
		Compile: func(cc *acl.CondCompile) (acl.CondFunc, error) {
			match, err := cc.ResultList(DMARCWords, nil)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, t *acl.Txn) (bool, error) {
				return match(ctx, t, string(dmarcOf(ctx, t).Outcome.Status))
			}, nil
		}})
	str := func(f func(t *acl.Txn, o *dmarc.Outcome) string) func(ctx context.Context, t *acl.Txn) (string, error) {
		return func(ctx context.Context, t *acl.Txn) (string, error) { return f(t, &dmarcOf(ctx, t).Outcome), nil }
	}
	for _, d := range []acl.VarDef{
		{Name: "dmarc_status", Doc: "the DMARC status word: accept, reject, quarantine, none, norecord, nofrom, temperror or off",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return string(o.Status) })},
		{Name: "dmarc_status_text", Doc: "a short human-readable account of the DMARC status",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return o.StatusText })},
		{Name: "dmarc_used_domain", Doc: "the domain whose DMARC record was used (the From domain when there is none)",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return o.UsedDomain })},
		{Name: "dmarc_domain_policy", Doc: "the policy the record declares for the From domain (p=, sp= or np=): none, quarantine or reject; empty without a record or on error",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return string(o.Policy) })},
		{Name: "dmarc_ar_header", Doc: "a whole Authentication-Results header with the DMARC result, for add_header; empty when DMARC is off",
			Get: func(ctx context.Context, t *acl.Txn) (string, error) {
				ar, ok := dmarcOf(ctx, t).AuthResult()
				if !ok {
					return "", nil
				}
				return authres.Field(authservID(t), []authres.Result{ar}), nil
			}},
		{Name: "dmarc_alignment_spf", Doc: "yes when an SPF pass is aligned with the From domain, else no",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return yesNo(o.AlignSPF) })},
		{Name: "dmarc_alignment_dkim", Doc: "yes when a DKIM pass is aligned with the From domain, else no",
			Get: str(func(_ *acl.Txn, o *dmarc.Outcome) string { return yesNo(o.AlignDKIM) })},
	} {
		d.Stages = DMARCStages
		reg.Variable(d)
	}
	reg.Variable(acl.VarDef{Name: "dmarc_forensic_sender", Doc: "the dmarc_forensic_sender option expanded for the message, or do-not-reply@$primary_hostname",
		Get: forensicSender})
	reg.Control(acl.ControlDef{Name: "dmarc_disable_verify", Stages: DMARCControlStages,
		Doc: "do not evaluate DMARC for this message (at CONNECT or HELO: for the connection's messages); $dmarc_status is off",
		Apply: func(t *acl.Txn, arg string) error {
			if t.Stage == acl.Connect || t.Stage == acl.Helo {
				t.Conn.SetControl("dmarc_disable_verify", arg)
			}
			t.SetControl("dmarc_disable_verify", arg)
			return nil
		}})
	reg.Control(acl.ControlDef{Name: forensicControl, Stages: DMARCControlStages,
		Doc: "send a DMARC failure report (RFC 9991) when the message fails DMARC and the policy's fo= asks for one (at CONNECT or HELO: for the connection's messages); spooled, then sent over report_smtp",
		Apply: func(t *acl.Txn, arg string) error {
			if t.Stage == acl.Connect || t.Stage == acl.Helo {
				t.Conn.SetControl(forensicControl, arg)
			}
			t.SetControl(forensicControl, arg)
			return nil
		}})
	reg.AddBodyHook(acl.BodyHook{Name: "dmarc_forensic", Start: startBodyPrefix})
	reg.AddFinisher(acl.Finisher{Name: "dmarc", Run: writeHistory})
	reg.AddFinisher(acl.Finisher{Name: "dmarc_forensic", Run: spoolFailureReport})
}
