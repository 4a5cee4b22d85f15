package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/aggregate"
)

// reportTime is a -begin/-end flag: YYYY-MM-DD (UTC midnight), RFC 3339,
// or Unix seconds.
type reportTime struct{ t time.Time }

func (r *reportTime) String() string {
	if r.t.IsZero() {
		return ""
	}
	return r.t.UTC().Format(time.RFC3339)
}

func (r *reportTime) Set(s string) error {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		r.t = t
		return nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		r.t = t
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		r.t = time.Unix(n, 0)
		return nil
	}
	return errors.New("not YYYY-MM-DD, an RFC 3339 time or Unix seconds")
}

// reporterOf is the reporter identity of the configuration.
func reporterOf(env *reportEnv) aggregate.Reporter {
	host := env.cfg.String("primary_hostname")
	if host == "" {
		host, _ = os.Hostname()
	}
	r := aggregate.Reporter{OrgName: env.cfg.String(report.OptReportOrgName), Email: env.cfg.String(report.OptReportEmail),
		Contact: env.cfg.String(report.OptReportContact)}
	if r.OrgName == "" {
		r.OrgName = host
	}
	if r.Email == "" {
		r.Email = "postmaster@" + host
	}
	return r
}

// period parses -begin and -end; the default is the previous UTC day.
func period(begin, end reportTime, now time.Time) (time.Time, time.Time, error) {
	b, e := begin.t, end.t
	if b.IsZero() && e.IsZero() {
		e = now.UTC().Truncate(24 * time.Hour)
		b = e.Add(-24 * time.Hour)
	} else if b.IsZero() {
		b = e.Add(-24 * time.Hour)
	} else if e.IsZero() {
		e = b.Add(24 * time.Hour)
	}
	if !b.Before(e) {
		return b, e, errors.New("-begin must be before -end")
	}
	return b, e, nil
}

func cmdReportAggregate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report aggregate", `Builds the DMARC aggregate reports (RFC 9990) of a period from
report_database: one per policy domain that published a DMARC record and
had messages in the period, with the messages grouped by source address,
disposition, DMARC results, override reasons and identifiers, and every
DKIM signature's result. -out writes each report, gzip-compressed, under
its RFC 9990 file name (receiver!policy-domain!begin!end.xml.gz).
With dmarc_report_format = rfc7489 (dmarc_discovery = psl only) the
reports are in RFC 7489's format (Appendix C), named and mailed alike.

-send mails each report to the policy domain's rua destinations through
report_smtp, from report_email: a destination outside the policy domain
must publish <policy-domain>._report._dmarc.<its domain> TXT "v=DMARC1"
(RFC 9990 external destination verification), and a size limit
(mailto:…!10m) is honoured. What became of each report is recorded in
the database: a second run for the same period sends nothing again; a
temporary failure (DNS, a 4xx reply, a server out of reach) is tried
again by the next run; a 5xx reply, a failed verification or a report
too large is recorded and not tried again.

The period is [-begin, -end): YYYY-MM-DD (UTC midnight), RFC 3339 or Unix
seconds; the default is the previous UTC day.

Exit status 0 on success, 1 when the database or a file could not be
used or a report could not be delivered, 2 for usage or configuration
errors.`, stderr)
	path, db := reportFlags(fs)
	var begin, end reportTime
	fs.Var(&begin, "begin", "start of the period (`TIME`, included)")
	fs.Var(&end, "end", "end of the period (`TIME`, excluded)")
	domain := fs.String("domain", "", "only the report of this policy `domain`")
	out := fs.String("out", "", "write the reports into `DIR`")
	send := fs.Bool("send", false, "mail the reports to their rua destinations through report_smtp")
	quiet := fs.Bool("q", false, "print nothing but problems")
	if code, done := parse(fs, args); done {
		return code
	}
	bad := usageError(stderr, "report aggregate", "sidecar report aggregate [-begin T] [-end T] [-domain D] {-out DIR | -send} [-config FILE]")
	if fs.NArg() != 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if *out == "" && !*send {
		return bad("-out DIR or -send is required")
	}
	b, e, err := period(begin, end, time.Now())
	if err != nil {
		return bad("%v", err)
	}
	env, ok := loadReportEnv("aggregate", *path, *db, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, ok := env.open(ctx, "aggregate", stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	var sender *aggregate.Sender
	rep := reporterOf(env)
	if *send {
		rt, err := daemon.Build(env.cfg, env.prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report aggregate: %v\n", err)
			return 2
		}
		sender = &aggregate.Sender{Store: st, DNS: rt.Resolver, From: rep.Email,
			SMTP: report.MailClient(env.cfg, rt.Services.PrimaryHostname)}
	}
	n, failed := 0, 0
	bl := &aggregate.Builder{Reporter: rep, Begin: b, End: e, Generator: "sidecar " + versionString(),
		Format: aggregate.Format(env.cfg.String(report.OptDMARCReportFormat)),
		Emit: func(r *aggregate.Report) error {
			n++
			if *out != "" {
				gz, err := r.Gzip()
				if err != nil {
					return err
				}
				name := filepath.Join(*out, r.FileName(""))
				if err := os.WriteFile(name, gz, 0o644); err != nil {
					return err
				}
				if !*quiet {
					fmt.Fprintf(stdout, "%s\n", name)
				}
			}
			if sender == nil {
				return nil
			}
			outcomes, err := sender.Send(ctx, r, b, e)
			for _, o := range outcomes {
				switch {
				case o.Status == "":
					// done by an earlier run
				case o.Err != nil:
					failed++
					fmt.Fprintf(stderr, "%s %s: %s: %v\n", o.Domain, o.URI, o.Status, o.Err)
				case !*quiet:
					fmt.Fprintf(stdout, "%s %s: %s\n", o.Domain, o.URI, o.Status)
				}
			}
			return err
		}}
	err = st.Groups(ctx, b, e, *domain, bl.Add)
	if err == nil {
		err = bl.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report aggregate: %v\n", err)
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%d reports for %s to %s\n", n, b.UTC().Format(time.RFC3339), e.UTC().Format(time.RFC3339))
	}
	if failed > 0 {
		return 1
	}
	return 0
}

var _ flag.Value = (*reportTime)(nil)
