package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Bounds of the bounce summary: the longest log line read, the distinct
// values counted per table (the rest count as "(other)").
const (
	maxLogLine    = 1 << 20
	maxTableKeys  = 10000
	defaultRecent = 10
)

func cmdReportBounces(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report bounces", `Summarises the msg=bounce lines of JSON logs (log_format = json) read
from each LOGFILE, or standard input: how many bounced recipients, per
remote MTA, per status, per recipient domain, and the most recent
diagnostics. Lines that are not JSON bounce lines are passed over.
Exit status 0, 2 for usage errors or an unreadable file.`, stderr)
	since := fs.String("since", "", "only lines at or after `T`: an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02), or a duration back from now (24h)")
	recent := fs.Int("n", defaultRecent, "the `number` of most recent diagnostics shown")
	if code, done := parse(fs, args); done {
		return code
	}
	from, err := parseSince(*since, time.Now())
	if err != nil || *recent < 0 {
		fmt.Fprintf(stderr, "sidecar report bounces: bad -since %q: want an RFC 3339 time, a date or a duration\n", *since)
		return 2
	}
	s := newBounceSummary(from, *recent)
	if fs.NArg() == 0 {
		if err := s.read(os.Stdin); err != nil {
			fmt.Fprintf(stderr, "sidecar report bounces: %v\n", err)
			return 2
		}
	}
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report bounces: %v\n", err)
			return 2
		}
		err = s.read(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "sidecar report bounces: %s: %v\n", name, err)
			return 2
		}
	}
	s.print(stdout)
	return 0
}

// parseSince reads -since: empty for no bound.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02", v, time.Local)
}

// bounceLine is what the summary reads of a msg=bounce line.
type bounceLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Recipient  string    `json:"recipient"`
	Action     string    `json:"action"`
	Status     string    `json:"status"`
	StatusText string    `json:"status_text"`
	RemoteMTA  string    `json:"remote_mta"`
	RemoteIP   string    `json:"remote_ip"`
	Diagnostic string    `json:"diagnostic"`
	QueueID    string    `json:"queue_id"`
	OrigID     string    `json:"original_message_id"`
}

type bounceSummary struct {
	since                time.Time
	total                int
	byAction             counter
	byMTA, byStatus      counter
	byDomain             counter
	statusText           map[string]string
	recent               []bounceLine // newest last, at most keep
	keep                 int
	skippedLong, invalid int
}

type counter map[string]int

func (c counter) add(k string) {
	if k == "" {
		k = "(none)"
	}
	if _, ok := c[k]; !ok && len(c) >= maxTableKeys {
		k = "(other)"
	}
	c[k]++
}

func newBounceSummary(since time.Time, keep int) *bounceSummary {
	return &bounceSummary{since: since, keep: keep, byAction: counter{}, byMTA: counter{}, byStatus: counter{},
		byDomain: counter{}, statusText: map[string]string{}}
}

// read adds the bounce lines of one log.
func (s *bounceSummary) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: read past it, up to maxLogLine,
			// joining the pieces.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				if len(long) <= maxLogLine {
					long = append(long, line...)
				}
			}
			if len(long) > maxLogLine {
				s.skippedLong++
				long = nil
			}
			line = long
		}
		if len(line) > 0 {
			s.line(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *bounceSummary) line(p []byte) {
	if !strings.Contains(string(p), `"msg":"bounce"`) {
		return
	}
	var b bounceLine
	if json.Unmarshal(p, &b) != nil || b.Msg != "bounce" {
		s.invalid++
		return
	}
	if !s.since.IsZero() && b.Time.Before(s.since) {
		return
	}
	s.total++
	s.byAction.add(b.Action)
	mta := b.RemoteMTA
	if b.RemoteIP != "" {
		mta = strings.TrimSpace(mta + " " + b.RemoteIP)
	}
	s.byMTA.add(mta)
	s.byStatus.add(b.Status)
	if b.Status != "" && len(s.statusText) < maxTableKeys {
		s.statusText[b.Status] = b.StatusText
	}
	domain := ""
	if i := strings.LastIndexByte(b.Recipient, '@'); i >= 0 {
		domain = strings.ToLower(b.Recipient[i+1:])
	}
	s.byDomain.add(domain)
	if s.keep > 0 {
		// Keep the newest by time; logs are mostly in order.
		i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].Time.After(b.Time) })
		s.recent = append(s.recent, bounceLine{})
		copy(s.recent[i+1:], s.recent[i:])
		s.recent[i] = b
		if len(s.recent) > s.keep {
			s.recent = s.recent[1:]
		}
	}
}

func (s *bounceSummary) print(w io.Writer) {
	fmt.Fprintf(w, "bounced recipients: %d", s.total)
	if !s.since.IsZero() {
		fmt.Fprintf(w, " since %s", s.since.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	table := func(title string, c counter, note func(k string) string) {
		if len(c) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if c[keys[i]] != c[keys[j]] {
				return c[keys[i]] > c[keys[j]]
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(w, "  %6d  %s%s\n", c[k], k, note(k))
		}
	}
	none := func(string) string { return "" }
	table("by action", s.byAction, none)
	table("by remote MTA", s.byMTA, none)
	table("by status", s.byStatus, func(k string) string {
		if t := s.statusText[k]; t != "" {
			return " (" + t + ")"
		}
		return ""
	})
	table("by recipient domain", s.byDomain, none)
	if len(s.recent) > 0 {
		fmt.Fprintf(w, "\nmost recent diagnostics:\n")
		for i := len(s.recent) - 1; i >= 0; i-- {
			b := s.recent[i]
			fmt.Fprintf(w, "  %s  %s  %s %s  %s  queue_id=%s original_message_id=%s\n", b.Time.Format(time.RFC3339), b.Recipient,
				b.Action, b.Status, b.Diagnostic, b.QueueID, b.OrigID)
		}
	}
	if s.invalid > 0 || s.skippedLong > 0 {
		fmt.Fprintf(w, "\nunreadable bounce lines: %d; lines over %d bytes passed over: %d\n", s.invalid, maxLogLine, s.skippedLong)
	}
}
