package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/report/tlsrpt"
)

// The reporter's identity in TLS reports (RFC 8460 §4.4).
func init() {
	for _, d := range []config.OptionDef{
		{Name: "tls_report_org_name", Kind: config.KindString, Doc: "organization-name of the TLS reports (RFC 8460); default: primary_hostname"},
		{Name: "tls_report_contact", Kind: config.KindString, Doc: "contact-info of the TLS reports: an address or URI; default: postmaster@primary_hostname"},
	} {
		config.RegisterOption(d)
	}
}

func cmdReportTLS(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report tls", `Arguments: [flags] LOGFILE...

Builds SMTP TLS reports (RFC 8460) from the mail log: Postfix's smtp
TLS and delivery lines, and the policy socket's "msg=policy" lines (which
policy, DANE or MTA-STS, it answered for which domain). One report per
policy domain and UTC day, written gzip'd to -out DIR as
SENDER!DOMAIN!BEGIN!END.json.gz (application/tlsrpt+gzip), or the JSON to
standard output. Exit status 0, 2 for usage errors or an unreadable file.`, stderr)
	begin := fs.String("begin", "", "only sessions at or after `T`: an RFC 3339 time, a date (UTC), or a duration back from now (default: yesterday 00:00 UTC)")
	end := fs.String("end", "", "only sessions before `T` (default: today 00:00 UTC)")
	out := fs.String("out", "", "write the gzip'd reports into `DIR`")
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
	cfg, _, err := daemon.Load(*path, acl.Default)
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
	for _, r := range a.Reports(rep) {
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
