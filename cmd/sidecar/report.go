package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/store"
)

// reportCommands are the sub-commands of "sidecar report".
func reportCommands() []command {
	return []command{
		{"import", "read history files into the report database", cmdReportImport},
		{"expire", "delete records older than some days from the report database", cmdReportExpire},
		{"summary", "a table per policy domain: DMARC pass and fail, alignment, dispositions, top failing sources", cmdReportSummary},
		{"aggregate", "build the DMARC aggregate reports (RFC 9990) of a period: write them to a directory or send them", cmdReportAggregate},
		{"tls", "build the SMTP TLS reports (RFC 8460) of a period from the mail log: write them or send them", cmdReportTLS},
		{"bounces", "summarise the bounce lines (msg=bounce) of JSON logs: per remote MTA, status, recipient domain", cmdReportBounces},
	}
}

func cmdReport(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		for _, c := range reportCommands() {
			if c.name == args[0] {
				return c.run(args[1:], stdout, stderr)
			}
		}
	}
	w := stderr
	code := 2
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		w, code = stdout, 0
	} else if len(args) > 0 {
		fmt.Fprintf(stderr, "sidecar report: unknown command %q\n\n", args[0])
	}
	fmt.Fprintf(w, "usage: sidecar report COMMAND [flags]\n\nReports: DMARC aggregate reports from the history file (dmarc_history_file, kept in\nreport_database), SMTP TLS reports and bounce summaries from the logs.\n\ncommands:\n")
	for _, c := range reportCommands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	return code
}

// reportEnv is what every report command needs: the configuration and
// the database.
type reportEnv struct {
	cfg  *config.Config
	prog *acl.Program
	db   string
}

// reportFlags adds -config and -database to a report command's flags.
func reportFlags(fs interface {
	String(name, value, usage string) *string
}) (path, db *string) {
	path = fs.String("config", "", "configuration `file` (default: the embedded default configuration)")
	db = fs.String("database", "", "report database, overriding report_database: an SQLite `path` or a postgres:// URL")
	return path, db
}

func loadReportEnv(name, path, db string, stderr io.Writer) (*reportEnv, bool) {
	cfg, prog, err := daemon.Load(path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return nil, false
	}
	env := &reportEnv{cfg: cfg, prog: prog, db: cfg.String(report.OptReportDatabase)}
	if db != "" {
		if err := report.CheckDatabase(db); err != nil {
			fmt.Fprintf(stderr, "sidecar report %s: -database: %v\n", name, err)
			return nil, false
		}
		env.db = db
	}
	return env, true
}

// open opens the report database, or prints why it cannot.
func (e *reportEnv) open(ctx context.Context, name string, stderr io.Writer) (*store.Store, bool) {
	st, err := store.Open(ctx, e.db)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report %s: %v\n", name, err)
		return nil, false
	}
	return st, true
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func cmdReportImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report import", `Arguments: [FILE…]

Reads DMARC history files (OpenDMARC 1.4's format, as dmarc_history_file
writes it; "-" is the standard input) into report_database; without FILE,
the configured dmarc_history_file. Files from other hosts and rotated
copies may be given too: a record already stored is not stored again
(one record per reporter, arrival second and queue ID). A record cut
short at the end of a file (a writer still writing, a crash) is left
for the next run. Corrupt records are skipped whole and listed with
their file and line.

Exit status 0 when every complete record was read, 1 when some were
corrupt or a file or the database could not be used, 2 for usage or
configuration errors.`, stderr)
	path, db := reportFlags(fs)
	quiet := fs.Bool("q", false, "print nothing but problems")
	if code, done := parse(fs, args); done {
		return code
	}
	env, ok := loadReportEnv("import", *path, *db, stderr)
	if !ok {
		return 2
	}
	files := fs.Args()
	if len(files) == 0 {
		h := env.cfg.String(checks.OptDMARCHistoryFile)
		if h == "" {
			fmt.Fprintf(stderr, "sidecar report import: no FILE given and no dmarc_history_file in the configuration\n")
			return 2
		}
		files = []string{h}
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, ok := env.open(ctx, "import", stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	progress := isTerminal(stderr) && !*quiet
	code := 0
	var total store.ImportResult
	for _, file := range files {
		res, err := importFile(ctx, st, file, progress, stderr)
		total.Add(res)
		for _, p := range res.Problems {
			fmt.Fprintf(stderr, "%v\n", p)
		}
		if res.Corrupt > 0 {
			code = 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report import: %v\n", err)
			code = 1
			if ctx.Err() != nil || errors.Is(err, store.ErrDatabase) {
				break
			}
			continue
		}
		if !*quiet {
			fmt.Fprintf(stdout, "%s: %s\n", file, importSummary(res))
		}
	}
	if len(files) > 1 && !*quiet {
		fmt.Fprintf(stdout, "total: %s\n", importSummary(total))
	}
	return code
}

func importSummary(r store.ImportResult) string {
	return fmt.Sprintf("%d records, %d added, %d already stored, %d corrupt, %d cut short", r.Records, r.Added, r.Records-r.Added, r.Corrupt, r.Incomplete)
}

func importFile(ctx context.Context, st *store.Store, file string, progress bool, stderr io.Writer) (store.ImportResult, error) {
	var in io.Reader = os.Stdin
	name := file
	if file == "-" {
		name = "(standard input)"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return store.ImportResult{}, err
		}
		defer f.Close()
		in = f
	}
	var show func(store.ImportResult)
	if progress {
		start := time.Now()
		show = func(r store.ImportResult) {
			fmt.Fprintf(stderr, "\r%s: %d records, %d added (%.0f/s)  ", name, r.Records, r.Added, float64(r.Records)/time.Since(start).Seconds())
		}
		defer fmt.Fprintf(stderr, "\r%s\r", strings.Repeat(" ", 70))
	}
	return st.Import(ctx, in, name, show)
}

func cmdReportExpire(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report expire", `Deletes from report_database the records of messages that arrived more
than -days days ago, and what was recorded about the delivery of reports
of periods that ended before then. Exit status 0 on success, 1 when the
database could not be used, 2 for usage or configuration errors.`, stderr)
	path, db := reportFlags(fs)
	days := fs.Int("days", 0, "keep the records of the last `N` days (required, at least 1)")
	quiet := fs.Bool("q", false, "print nothing on success")
	if code, done := parse(fs, args); done {
		return code
	}
	if *days < 1 || fs.NArg() != 0 {
		return usageError(stderr, "report expire", "sidecar report expire -days N [-config FILE] [-database DSN]")("-days N (at least 1) is required")
	}
	env, ok := loadReportEnv("expire", *path, *db, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, ok := env.open(ctx, "expire", stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	before := time.Now().Add(-time.Duration(*days) * 24 * time.Hour)
	n, err := st.Expire(ctx, before)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar report expire: %v\n", err)
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%d records before %s deleted\n", n, before.UTC().Format(time.RFC3339))
	}
	return 0
}
