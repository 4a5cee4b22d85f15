package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/spf"
)

const spfDoc = `Checks SPF (RFC 7208) as the daemon does: the MAIL FROM identity, or the
HELO identity when the sender is null. Prints the result, the identity and
domain checked, the mechanism that matched, the explanation of a fail, the
problem of a permerror or temperror, and the Received-SPF header.
With -config, the file's spf_guess, primary_hostname and DNS options apply.
Exit status 0 for pass, 1 for any other result, 2 for usage or configuration
errors.`

func cmdSPF(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("spf", spfDoc, stderr)
	ipText := fs.String("ip", "", "the SMTP client's `address`, IPv4 or IPv6 (required)")
	helo := fs.String("helo", "", "the HELO/EHLO `name` the client gave (required)")
	sender := fs.String("sender", "", "the MAIL FROM `address`; empty or <> for the null sender")
	dnsAddr := fs.String("dns", "", "the DNS resolver to ask, `ADDR[:PORT]` (default: dns_servers of -config, or /etc/resolv.conf)")
	guess := fs.Bool("guess", false, "for a domain without SPF record, evaluate the spf_guess record (default \""+checks.DefaultGuess+"\")")
	receiver := fs.String("receiver", "", "this host's `name` in the comments and Received-SPF (default: primary_hostname of -config, or the system host name)")
	path := fs.String("config", "", "configuration `file` whose spf_guess, primary_hostname and dns_* options apply (default: none)")
	timeout := fs.Duration("timeout", 20*time.Second, "longest time the check may take")
	if code, done := parse(fs, args); done {
		return code
	}
	usageErr := usageError(stderr, "spf", "sidecar spf -ip IP -helo NAME [-sender ADDR] [-dns ADDR:PORT] [-guess] [-config FILE]")
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *ipText == "" {
		return usageErr("-ip is required")
	}
	ip, ok := parseClientIP(*ipText)
	if !ok {
		return usageErr("-ip %q is not an IP address", *ipText)
	}
	if strings.TrimSpace(*helo) == "" {
		return usageErr("-helo is required")
	}
	from := strings.TrimSpace(*sender)
	if len(from) >= 2 && from[0] == '<' && from[len(from)-1] == '>' {
		from = from[1 : len(from)-1]
	}
	var servers []string
	if *dnsAddr != "" {
		a, err := config.ParseServer(*dnsAddr)
		if err != nil {
			return usageErr("-dns: %v", err)
		}
		servers = []string{a}
	}
	if *timeout <= 0 {
		return usageErr("-timeout must be positive")
	}
	c, settings, code := spfChecker(*path, servers, stderr)
	if c == nil {
		return code
	}
	if *receiver != "" {
		c.Receiver = *receiver
	}
	q := checks.Query{IP: ip, Helo: strings.TrimSpace(*helo), Sender: from}
	if *guess {
		q.Guess = settings.Guess
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	e := checks.Evaluate(ctx, c, q)
	printSPF(stdout, e, *guess)
	if e.Outcome.Result == spf.Pass {
		return 0
	}
	return 1
}

// spfChecker builds the checker and settings of the command: from the
// configuration file, through the daemon's own Load and Build, or from
// the defaults and a resolver of servers (nil: /etc/resolv.conf). On
// error it returns a nil checker and the exit status.
func spfChecker(path string, servers []string, stderr io.Writer) (*spf.Checker, checks.Settings, int) {
	if path == "" {
		res, err := resolver.New(resolver.Options{Servers: servers})
		if err != nil {
			fmt.Fprintf(stderr, "sidecar spf: DNS resolver: %v\n", err)
			return nil, checks.Settings{}, 1
		}
		host, _ := os.Hostname()
		return &spf.Checker{DNS: res, Receiver: host}, checks.DefaultSettings(), 0
	}
	cfg, prog, err := daemon.Load(path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return nil, checks.Settings{}, 2
	}
	settings, err := checks.SettingsFrom(cfg)
	if err != nil {
		printConfigError(stderr, err)
		return nil, checks.Settings{}, 2
	}
	if servers != nil {
		cfg.Get("dns_servers").Addrs = servers
	}
	rt, err := daemon.Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar spf: %v\n", err)
		return nil, checks.Settings{}, 1
	}
	return &spf.Checker{DNS: rt.Services.DNS, Receiver: rt.Services.PrimaryHostname, Now: rt.Services.Now}, settings, 0
}

func printSPF(w io.Writer, e *checks.Evaluation, guess bool) {
	o := e.Outcome
	row := func(k, v string) { fmt.Fprintf(w, "%-13s %s\n", k+":", v) }
	row("result", string(o.Result))
	row("identity", o.Identity+" "+o.Sender)
	row("domain", o.Domain)
	switch o.Mechanism {
	case "":
		row("mechanism", "(none)")
	case "default":
		row("mechanism", "(no mechanism matched: the default result)")
	default:
		row("mechanism", o.Mechanism)
	}
	if o.Explanation != "" {
		row("explanation", o.Explanation)
	}
	if o.Problem != "" {
		row("problem", o.Problem)
	}
	if guess {
		row("guessed", map[bool]string{true: "yes", false: "no"}[o.Guessed])
	}
	row("lookups", fmt.Sprintf("%d DNS-querying terms, %d void", o.Lookups, o.Voids))
	fmt.Fprintln(w, e.Received())
}
