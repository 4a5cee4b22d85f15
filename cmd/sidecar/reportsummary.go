package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func cmdReportSummary(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report summary", `Prints, for each policy domain with a DMARC record that sent mail in
the last -days days, the messages, how many passed and failed DMARC, how
many had SPF and DKIM aligned, what was done with them (rejected,
quarantined, delivered) and the sources that failed most; busiest domain
first. -json prints the same as a JSON array for scripts.

Exit status 0 on success, 1 when the database could not be used, 2 for
usage or configuration errors.`, stderr)
	path, db := reportFlags(fs)
	days := fs.Int("days", 1, "the last `N` days")
	domain := fs.String("domain", "", "only this policy `domain`")
	asJSON := fs.Bool("json", false, "print JSON")
	top := fs.Int("top", 3, "failing sources shown per domain, at most `N`")
	if code, done := parse(fs, args); done {
		return code
	}
	if *days < 1 || *top < 0 || fs.NArg() != 0 {
		return usageError(stderr, "report summary", "sidecar report summary [-days N] [-domain D] [-json] [-config FILE]")("-days must be at least 1")
	}
	env, ok := loadReportEnv("summary", *path, *db, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, ok := env.open(ctx, "summary", stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	sum, err := st.Summary(ctx, time.Now().Add(-time.Duration(*days)*24*time.Hour), *domain, *top)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report summary: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if sum == nil {
			fmt.Fprintln(stdout, "[]")
			return 0
		}
		enc.Encode(sum)
		return 0
	}
	if len(sum) == 0 {
		fmt.Fprintf(stdout, "no messages in the last %d days\n", *days)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy domain\tmessages\tDMARC pass\tfail\tSPF aligned\tDKIM aligned\trejected\tquarantined\tdelivered\t  top failing sources\n")
	for _, d := range sum {
		var srcs []string
		for _, s := range d.TopFailing {
			srcs = append(srcs, fmt.Sprintf("%s (%d)", s.IP, s.Count))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t  %s\n", d.Domain, d.Messages, pct(d.DMARCPass, d.Messages), d.DMARCFail,
			pct(d.SPFAligned, d.Messages), pct(d.DKIMAligned, d.Messages), d.Rejected, d.Quarantined, d.Delivered, strings.Join(srcs, ", "))
	}
	tw.Flush()
	return 0
}

func pct(n, of int64) string {
	if of == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.0f%%)", n, 100*float64(n)/float64(of))
}
