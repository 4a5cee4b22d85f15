package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/stage"
)

const checkDoc = `Evaluates a message file as the daemon would: the ACL of every stage
(connect, HELO, MAIL, RCPT, DATA) with its hooks, the message's header and
body through the same body hooks (DKIM), then prints each stage's verdict,
the details of SPF, DKIM and DMARC, what the ACLs logged, the headers they
add and the Authentication-Results header the daemon would add.
The configuration is -config's, or the embedded default one. No DMARC
history record is written.
MESSAGE is a file in RFC 5322 format (LF or CRLF line ends; a leading mbox
"From " line is skipped), or - for standard input.
Without -ip the message is taken as a local submission: SPF and DMARC are
not checked. -sender defaults to the From address of the message, -rcpt to
its first To address.
Exit status 0 when the DATA ACL would accept the message, 1 when any stage
would refuse it (or discard it), 2 for usage or configuration errors.`

// maxCheckMessage bounds the message file.
const maxCheckMessage = 64 << 20

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", checkDoc, stderr)
	ipText := fs.String("ip", "", "the SMTP client's `address`, IPv4 or IPv6 (default: none, a local submission)")
	helo := fs.String("helo", "", "the HELO/EHLO `name` the client gave")
	sender := fs.String("sender", "", "the MAIL FROM `address`; <> for the null sender (default: the message's From address)")
	rcptText := fs.String("rcpt", "", "the RCPT TO `addresses`, comma-separated (default: the message's first To address)")
	auth := fs.String("auth", "", "the SASL login `name` of an authenticated client")
	queueID := fs.String("queue-id", "", "the MTA's queue `ID` ($queue_id)")
	dnsAddr := fs.String("dns", "", "the DNS resolver to ask, `ADDR[:PORT]` (default: dns_servers of the configuration, or /etc/resolv.conf)")
	path := fs.String("config", "", "configuration `file` (default: the embedded default configuration)")
	timeout := fs.Duration("timeout", 30*time.Second, "longest time each stage may take")
	if code, done := parse(fs, args); done {
		return code
	}
	usageErr := usageError(stderr, "check", "sidecar check [-ip IP] [-helo NAME] [-sender ADDR] [-rcpt ADDR,...] [-dns ADDR:PORT] [-config FILE] MESSAGE")
	if fs.NArg() != 1 {
		return usageErr("one MESSAGE file is needed")
	}
	var ip netip.Addr
	if *ipText != "" {
		var ok bool
		if ip, ok = parseClientIP(*ipText); !ok {
			return usageErr("-ip %q is not an IP address", *ipText)
		}
	}
	if *timeout <= 0 {
		return usageErr("-timeout must be positive")
	}
	var servers []string
	if *dnsAddr != "" {
		a, err := config.ParseServer(*dnsAddr)
		if err != nil {
			return usageErr("-dns: %v", err)
		}
		servers = []string{a}
	}
	raw, err := readMessage(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar check: %v\n", err)
		return 2
	}
	msg := parseMessage(raw)

	cfg, prog, err := daemon.Load(*path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}
	if servers != nil {
		cfg.Get("dns_servers").Addrs = servers
	}
	rt, err := daemon.Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar check: %v\n", err)
		return 2
	}
	// The Program is not attached: a check is not a delivery and writes
	// no history record.

	in := checkInput{ip: ip, helo: strings.TrimSpace(*helo), auth: *auth, queueID: *queueID}
	in.sender, in.senderGiven = trimAddr(*sender), *sender != ""
	if !in.senderGiven {
		in.sender = firstAddress(msg.header("From"))
	}
	for _, r := range strings.Split(*rcptText, ",") {
		if r = trimAddr(r); r != "" {
			in.rcpts = append(in.rcpts, r)
		}
	}
	if len(in.rcpts) == 0 {
		if to := firstAddress(msg.header("To")); to != "" {
			in.rcpts = []string{to}
		} else {
			in.rcpts = []string{"postmaster"}
		}
	}
	res := runCheck(rt, in, msg, *timeout)
	defer res.drv.Close()
	printCheck(stdout, rt, in, res)
	if res.accepted {
		return 0
	}
	return 1
}

// checkInput is the SMTP side of a check.
type checkInput struct {
	ip          netip.Addr
	helo        string
	sender      string
	senderGiven bool
	rcpts       []string
	auth        string
	queueID     string
}

// message is a message file split as a milter receives it.
type message struct {
	headers []acl.Header // raw values: leading space and CRLF folding kept
	body    []byte       // CRLF line ends
}

func (m *message) header(name string) string {
	for _, h := range m.headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func readMessage(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCheckMessage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCheckMessage {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, maxCheckMessage>>20)
	}
	if len(b) == 0 {
		return nil, errors.New(name + ": empty message")
	}
	return b, nil
}

// parseMessage splits a message into header fields and body as an MTA
// passes them to a milter: LF line ends become CRLF, a leading mbox
// "From " line is dropped, each field keeps its raw value after the colon.
func parseMessage(raw []byte) *message {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			raw = raw[i+2:]
		}
	}
	m := &message{}
	rest := raw
	for len(rest) > 0 {
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			m.body = rest[2:]
			return m
		}
		end := 0
		for {
			i := bytes.Index(rest[end:], []byte("\r\n"))
			if i < 0 {
				end = len(rest)
				break
			}
			end += i + 2
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		field := string(bytes.TrimSuffix(rest[:end], []byte("\r\n")))
		rest = rest[end:]
		name, value, ok := strings.Cut(field, ":")
		if !ok || !ascii.FieldName(strings.TrimRight(name, " \t")) {
			// Not a header field: the header ended without an empty line
			// (as an MTA would take it, the rest is body).
			m.body = append([]byte(field+"\r\n"), rest...)
			return m
		}
		m.headers = append(m.headers, acl.Header{Name: strings.TrimRight(name, " \t"), Value: value})
	}
	return m
}

func trimAddr(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	return s
}

// firstAddress is the first address of an address-list header value.
func firstAddress(v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	list, err := mail.ParseAddressList(strings.NewReplacer("\r\n", "").Replace(v))
	if err != nil || len(list) == 0 {
		return ""
	}
	return list[0].Address
}

// stageResult is one stage's verdict.
type stageResult struct {
	stage acl.Stage
	rcpt  string
	res   acl.Result
}

type checkResult struct {
	drv      *stage.Driver
	stages   []stageResult
	end      *stage.End // nil when the message did not reach its end
	accepted bool
}

// runCheck runs the transaction through the stage driver the milter
// uses: every stage's ACL with its hooks, the header fields, the body
// writers, the end of the message with its edits. The caller closes the
// driver once it has read the results.
func runCheck(rt *daemon.Runtime, in checkInput, msg *message, timeout time.Duration) *checkResult {
	env := &stage.Env{Program: rt.Program, Services: rt.Services, AuthservID: rt.Milter.AuthservID,
		StripIDs: rt.Milter.StripIDs, StageTimeout: timeout}
	d := stage.New(env)
	out := &checkResult{drv: d}
	ctx := context.Background()
	record := func(st acl.Stage, rcpt string, res acl.Result) acl.Result {
		out.stages = append(out.stages, stageResult{stage: st, rcpt: rcpt, res: res})
		return res
	}
	refused := func(res acl.Result) bool { return res.Verb != acl.Accept && res.Verb != acl.Discard }
	if refused(record(acl.Connect, "", d.Connect(ctx, stage.Client{IP: in.ip}))) {
		return out
	}
	d.Conn.AuthID = in.auth
	if refused(record(acl.Helo, "", d.Helo(ctx, in.helo))) {
		return out
	}
	if record(acl.Mail, "", d.Mail(ctx, in.sender, in.queueID)).Verb != acl.Accept {
		return out
	}
	for _, r := range in.rcpts {
		record(acl.Rcpt, r, d.Rcpt(ctx, r))
	}
	if len(d.Txn.Recipients) == 0 {
		return out
	}
	for _, h := range msg.headers {
		d.Header(h.Name, h.Value)
	}
	d.EndOfHeader()
	for b := msg.body; len(b) > 0; {
		n := min(len(b), 64<<10)
		d.Body(b[:n])
		b = b[n:]
	}
	out.end = d.EndOfMessage(ctx, in.queueID)
	record(acl.Data, "", out.end.Result)
	out.accepted = out.end.Result.Verb == acl.Accept && !out.end.Discard
	return out
}

func printCheck(w io.Writer, rt *daemon.Runtime, in checkInput, r *checkResult) {
	row := func(k, v string) {
		if k != "" {
			k += ":"
		}
		fmt.Fprintf(w, "%-11s %s\n", k, v)
	}
	client := "local submission (no -ip)"
	if in.ip.IsValid() {
		client = in.ip.String()
	}
	if in.helo != "" {
		client += ", HELO " + in.helo
	}
	if in.auth != "" {
		client += ", authenticated as " + in.auth
	}
	row("client", client)
	sender := in.sender
	if sender == "" {
		sender = "<>"
	}
	if !in.senderGiven {
		sender += " (from the From header)"
	}
	row("sender", sender)
	for _, s := range r.stages {
		name := s.stage.String()
		if s.stage == acl.Rcpt {
			name += " " + s.rcpt
		}
		v := string(s.res.Verb)
		if s.res.Message != "" {
			v += ": " + s.res.Message
		}
		if s.res.ACL != "" && s.res.Pos.IsValid() {
			v += "  [" + s.res.ACL + " " + s.res.Pos.String() + "]"
		}
		if s.res.Err != nil {
			v += " (error: " + s.res.Err.Error() + ")"
		}
		row(name, v)
	}
	t := r.drv.Txn
	m := t.Results
	if e := m.SPF; e != nil && t.HasSender {
		o := e.Outcome
		row("spf", fmt.Sprintf("%s (%s) %s %s", o.Result, e.Reason(), o.Identity, o.Domain))
	}
	if m.DKIM.Examined {
		if len(m.DKIM.Results) == 0 {
			row("dkim", "none (no signatures)")
		}
		for _, d := range m.DKIM.Results {
			s := fmt.Sprintf("%s d=%s s=%s a=%s i=%s b=%s", d.Status, d.Domain, d.Selector, d.Algorithm, d.Identifier, d.BPrefix)
			if d.Reason != "" {
				s += " (" + d.Reason + ")"
			}
			if d.Testing {
				s += " [key in testing mode, t=y]"
			}
			row("dkim", s)
		}
	}
	if d := m.DMARC; d != nil {
		o := d.Outcome
		s := string(o.Status)
		if o.StatusText != "" {
			s += " (" + o.StatusText + ")"
		}
		row("dmarc", s)
		if o.Status != "off" && o.Status != "nofrom" {
			row("", fmt.Sprintf("from %s; record of %s; policy %s; SPF aligned: %s; DKIM aligned: %s",
				o.FromDomain, orDash(o.PolicyDomain), orDash(string(o.Policy)), yesNoWord(o.AlignSPF), yesNoWord(o.AlignDKIM)))
			if o.Record != nil {
				row("", "record: "+o.Record.String())
			}
		}
	}
	if t.HasSender && len(t.Headers) > 0 {
		if chain, err := checks.ARCChain(context.Background(), t); err != nil {
			row("arc", "not validated: "+err.Error())
		} else if chain != nil {
			desc := strings.TrimRight(DescribeARC(chain), "\n")
			lines := strings.Split(desc, "\n")
			row("arc", strings.TrimPrefix(lines[0], "arc="))
			for _, l := range lines[1:] {
				row("", strings.TrimSpace(l))
			}
		}
	}
	for _, l := range t.Logs {
		where := l.Stage.String()
		if l.ACL != "" {
			where += " " + l.ACL
		}
		row("log", fmt.Sprintf("[%s] %s: %s", where, l.Kind, l.Text))
	}
	if !r.accepted {
		fmt.Fprintln(w, "result:     the message would not be accepted")
		return
	}
	e := r.end.Edits
	for _, f := range e.Delete {
		row("remove", fmt.Sprintf("%s (#%d)", f.Name, f.Index))
	}
	for _, set := range []struct {
		where  string
		fields []stage.Field
	}{{"add_header (at start)", e.AtStart}, {"add_header", e.AtEnd}} {
		for _, f := range set.fields {
			row("header", set.where)
			fmt.Fprintln(w, "  "+strings.ReplaceAll(f.Name+":"+f.Value, "\r\n", "\n  "))
		}
	}
	for _, rcpt := range e.RemoveRcpts {
		row("discard", rcpt)
	}
	if e.Quarantine {
		row("quarantine", e.QuarantineReason)
	}
	fmt.Fprintln(w, "result:     the message would be accepted")
	if ar := e.AuthResults; ar != nil {
		fmt.Fprintln(w, ar.Name+":"+strings.ReplaceAll(ar.Value, "\r\n", "\n"))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNoWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
