package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/tlsrpt"
)

// The reporter's identity in TLS reports (RFC 8460 §4.4).
func init() {
	for _, d := range []config.OptionDef{
		{Name: "tls_report_org_name", Kind: config.KindString, Doc: "organization-name of the TLS reports (RFC 8460); default: primary_hostname"},
		{Name: "tls_report_contact", Kind: config.KindString, Doc: "contact-info of the TLS reports: an address or URI; default: postmaster@primary_hostname"},
		{Name: "tls_report_state_file", Kind: config.KindPath, Default: "/var/lib/sidecar/tlsrpt-state.json",
			Doc: "what sidecar report tls -send has done (sent, refused, no record), so that a run sends nothing twice"},
	} {
		config.RegisterOption(d)
	}
}

func cmdReportTLS(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report tls", `Arguments: [flags] LOGFILE...

Builds SMTP TLS reports (RFC 8460) from the mail log: Postfix's smtp
TLS and delivery lines or Exim's main log (its own file or through
syslog; each line is recognized by its format, so the logs of both MTAs
may be named together), and the policy socket's "msg=policy" lines (which
policy, DANE or MTA-STS, it answered for which domain). One report per
policy domain and UTC day, written gzip'd to -out DIR as
SENDER!DOMAIN!BEGIN!END.json.gz (application/tlsrpt+gzip), sent with
-send (whole UTC days only: -begin and -end are rounded down to midnight),
or the JSON to standard output. Exit status 0; 1 when -send left
something to try again on the next run (a temporary failure); 2 for
usage errors, an unreadable file or a state file that cannot be written.`, stderr)
	begin := fs.String("begin", "", "only sessions at or after `T`: an RFC 3339 time, a date (UTC), or a duration back from now (default: yesterday 00:00 UTC)")
	end := fs.String("end", "", "only sessions before `T` (default: today 00:00 UTC)")
	out := fs.String("out", "", "write the gzip'd reports into `DIR`")
	send := fs.Bool("send", false, "send the reports to the rua of each policy domain's _smtp._tls record (mailto: through report_smtp, https: POST); tls_report_state_file keeps what was sent")
	path := fs.String("config", "", "configuration `file` with tls_report_org_name, tls_report_contact, primary_hostname")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	now := time.Now()
	today := now.UTC().Truncate(24 * time.Hour)
	b, e := today.AddDate(0, 0, -1), today
	var err error
	if *begin != "" {
		if b, err = parseSince(*begin, now); err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: bad -begin %q\n", *begin)
			return 2
		}
	}
	if *end != "" {
		if e, err = parseSince(*end, now); err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: bad -end %q\n", *end)
			return 2
		}
	}
	if *send {
		if *out != "" {
			fmt.Fprintf(stderr, "sidecar report tls: -send and -out exclude each other\n")
			return 2
		}
		// A report is sent once: never one of a day not yet over.
		b, e = b.UTC().Truncate(24*time.Hour), e.UTC().Truncate(24*time.Hour)
	}
	cfg, prog, err := daemon.Load(*path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}
	host := cfg.String("primary_hostname")
	if host == "" {
		host, _ = os.Hostname()
	}
	rep := tlsrpt.Reporter{OrgName: cfg.String("tls_report_org_name"), Contact: cfg.String("tls_report_contact"), Domain: host}
	if rep.OrgName == "" {
		rep.OrgName = host
	}
	if rep.Contact == "" {
		rep.Contact = "postmaster@" + host
	}
	a := &tlsrpt.Aggregator{Begin: b, End: e, Ref: e}
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: %v\n", err)
			return 2
		}
		err = a.Read(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: %s: %v\n", name, err)
			return 2
		}
	}
	reports := a.Reports(rep)
	if *send {
		return sendTLSReports(cfg, prog, rep, reports, stdout, stderr)
	}
	for _, r := range reports {
		if *out == "" {
			doc, err := r.JSON()
			if err != nil {
				fmt.Fprintf(stderr, "sidecar report tls: %v\n", err)
				return 2
			}
			fmt.Fprintf(stdout, "%s\n", doc)
			continue
		}
		gz, err := r.Gzip()
		if err == nil {
			err = os.WriteFile(filepath.Join(*out, r.FileName()), gz, 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "%s\n", filepath.Join(*out, r.FileName()))
	}
	return 0
}

// sendTLSReports sends the reports (sidecar report tls -send) and prints
// one line per destination.
func sendTLSReports(cfg *config.Config, prog *acl.Program, rep tlsrpt.Reporter, reports []*tlsrpt.Report, stdout, stderr io.Writer) int {
	rt, err := daemon.Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report tls: %v\n", err)
		return 2
	}
	roots, err := mtasts.LoadRoots(cfg.String("mta_sts_ca_file"))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report tls: mta_sts_ca_file: %v\n", err)
		return 2
	}
	st, err := tlsrpt.LoadState(cfg.String("tls_report_state_file"), time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report tls: %v\n", err)
		return 2
	}
	from := rep.Contact
	if a, err := mail.ParseAddress(from); err != nil || a.Name != "" {
		from = "postmaster@" + rep.Domain
	}
	s := &tlsrpt.Sender{
		DNS:   rt.Resolver,
		SMTP:  report.MailClient(cfg, rep.Domain),
		HTTP:  mtasts.NewResolvingHTTPClient(roots, time.Minute, rt.Resolver),
		From:  from,
		State: st,
	}
	code := 0
	for _, r := range reports {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		outs, err := s.Send(ctx, r)
		cancel()
		for _, o := range outs {
			line := o.Report + " " + string(o.Status)
			if o.Dest != "" {
				line += " " + o.Dest
			}
			if o.Err != nil && o.Status != tlsrpt.Skipped {
				line += ": " + o.Err.Error()
			}
			fmt.Fprintln(stdout, line)
			if o.Status == tlsrpt.Deferred {
				code = 1
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report tls: state file: %v\n", err)
			return 2
		}
	}
	return code
}

func checkSMTPHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not HOST:PORT (for example 127.0.0.1:25)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
