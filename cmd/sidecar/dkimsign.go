package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/stage"
)

const dkimSignDoc = `sidecar dkim-sign [-domain D] [-selector S] [-key FILE] [-config FILE] MESSAGE

Signs MESSAGE (a file, or - for standard input) as the daemon signs a local
submission: the configuration's dkim_domain, dkim_selector,
dkim_private_key, dkim_canon, dkim_sign_headers, dkim_hash and
dkim_timestamps, expanded for this message, and its ACLs (control =
dkim_disable_sign), through the same code (the stage driver, the body hook,
the signing after the DATA ACL). -domain, -selector and -key replace
dkim_domain, dkim_selector and dkim_private_key (they may be colon lists).
Prints the message with the DKIM-Signature fields added on top; the message
itself is unchanged (its line ends are kept).
Exit status 0 when at least one signature was added, 1 when none was (the
reasons on standard error), 2 for usage or configuration errors.`

func cmdDKIMSign(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dkim-sign", dkimSignDoc, stderr)
	domain := fs.String("domain", "", "the signing `domain` (d=), replacing dkim_domain")
	selector := fs.String("selector", "", "the `selector` (s=), replacing dkim_selector; colon-separated for several signatures")
	keyPath := fs.String("key", "", "the private key `file` (PEM RSA or Ed25519), replacing dkim_private_key (may use ${dkim_selector})")
	path := fs.String("config", "", "configuration `file` (default: the embedded default configuration)")
	timeout := fs.Duration("timeout", 30*time.Second, "longest time each stage may take")
	if code, done := parse(fs, args); done {
		return code
	}
	usageErr := usageError(stderr, "dkim-sign", "sidecar dkim-sign [-domain D] [-selector S] [-key FILE] [-config FILE] MESSAGE")
	if fs.NArg() != 1 {
		return usageErr("give one MESSAGE file (or - for standard input)")
	}
	if *timeout <= 0 {
		return usageErr("-timeout must be positive")
	}
	raw, err := readMessage(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar dkim-sign: %v\n", err)
		return 2
	}
	cfg, prog, err := daemon.Load(*path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}
	overrides := map[string]string{checks.OptDKIMDomain: *domain, checks.OptDKIMSelector: *selector}
	if *keyPath != "" {
		abs, err := filepath.Abs(*keyPath)
		if err != nil {
			return usageErr("-key: %v", err)
		}
		overrides[checks.OptDKIMPrivateKey] = abs
	}
	changed := false
	for name, v := range overrides {
		if v == "" {
			continue
		}
		s := cfg.Get(name)
		s.Value, s.Str, s.Set = config.NewValue(v, config.Pos{File: "-" + strings.TrimPrefix(name, "dkim_"), Line: 1, Col: 1}), v, true
		changed = true
	}
	if changed {
		if prog, err = acl.Compile(cfg, acl.Default); err != nil {
			printConfigError(stderr, err)
			return 2
		}
	}
	if strings.TrimSpace(cfg.Get(checks.OptDKIMDomain).Value.Text) == "" {
		return usageErr("no dkim_domain: give -domain, or a -config that sets dkim_domain")
	}
	rt, err := daemon.Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar dkim-sign: %v\n", err)
		return 2
	}
	msg := parseMessage(raw)
	in := checkInput{sender: firstAddress(msg.header("From")), rcpts: []string{"postmaster"}}
	if to := firstAddress(msg.header("To")); to != "" {
		in.rcpts = []string{to}
	}
	res := runCheck(rt, in, msg, *timeout)
	defer res.drv.Close()
	for _, l := range res.drv.Txn.Logs {
		if l.Kind == "error" {
			fmt.Fprintf(stderr, "sidecar dkim-sign: %s\n", l.Text)
		}
	}
	if !res.accepted {
		fmt.Fprintf(stderr, "sidecar dkim-sign: not signed: the configuration's ACLs refused the message (%s)\n", res.lastVerdict())
		return 1
	}
	signed := res.drv.Txn.Results.DKIMSign.Signed
	if len(signed) == 0 {
		fmt.Fprintf(stderr, "sidecar dkim-sign: no signature added\n")
		return 1
	}
	writeSigned(stdout, raw, signatureFields(res.end.Edits))
	return 0
}

// signatureFields are the DKIM-Signature fields among the edits, in the
// order they will stand in the message.
func signatureFields(e *stage.Edits) []string {
	var out []string
	for _, f := range e.AtStart {
		if strings.EqualFold(f.Name, "DKIM-Signature") {
			out = append(out, f.Name+":"+f.Value)
		}
	}
	return out // the milter puts :at_start: fields on top in list order
}

// writeSigned prints the fields on top of the message, in its own line
// ends.
func writeSigned(w io.Writer, raw []byte, fields []string) {
	eol := "\r\n"
	if i := strings.IndexByte(string(raw[:min(len(raw), 4096)]), '\n'); i >= 0 && (i == 0 || raw[i-1] != '\r') {
		eol = "\n"
	}
	for _, f := range fields {
		io.WriteString(w, strings.ReplaceAll(f, "\r\n", eol)+eol)
	}
	w.Write(raw)
}

// lastVerdict names the last stage's verdict of a check.
func (r *checkResult) lastVerdict() string {
	if len(r.stages) == 0 {
		return "no stage ran"
	}
	s := r.stages[len(r.stages)-1]
	return s.stage.String() + ": " + string(s.res.Verb)
}
