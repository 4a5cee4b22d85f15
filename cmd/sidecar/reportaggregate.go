package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

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

The period is [-begin, -end): YYYY-MM-DD (UTC midnight), RFC 3339 or Unix
seconds; the default is the previous UTC day.

Exit status 0 on success, 1 when the database or a file could not be
used, 2 for usage or configuration errors.`, stderr)
	path, db := reportFlags(fs)
	var begin, end reportTime
	fs.Var(&begin, "begin", "start of the period (`TIME`, included)")
	fs.Var(&end, "end", "end of the period (`TIME`, excluded)")
	domain := fs.String("domain", "", "only the report of this policy `domain`")
	out := fs.String("out", "", "write the reports into `DIR`")
	quiet := fs.Bool("q", false, "print nothing but problems")
	if code, done := parse(fs, args); done {
		return code
	}
	bad := usageError(stderr, "report aggregate", "sidecar report aggregate [-begin T] [-end T] [-domain D] -out DIR [-config FILE]")
	if fs.NArg() != 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return bad("-out DIR is required")
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
	n := 0
	bl := &aggregate.Builder{Reporter: reporterOf(env), Begin: b, End: e, Generator: "sidecar " + versionString(),
		Emit: func(r *aggregate.Report) error {
			gz, err := r.Gzip()
			if err != nil {
				return err
			}
			name := filepath.Join(*out, r.FileName(""))
			if err := os.WriteFile(name, gz, 0o644); err != nil {
				return err
			}
			n++
			if !*quiet {
				fmt.Fprintf(stdout, "%s\n", name)
			}
			return nil
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
	return 0
}

var _ flag.Value = (*reportTime)(nil)
