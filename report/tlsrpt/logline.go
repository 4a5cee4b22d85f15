package tlsrpt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxLine is the longest log line read; longer lines are passed over.
const MaxLine = 64 << 10

// forEachLine calls f for each line of r, without its newline; lines
// longer than MaxLine are skipped whole. Memory stays bounded whatever
// the input.
func forEachLine(r io.Reader, f func(line []byte)) error {
	br := bufio.NewReaderSize(r, MaxLine)
	skipping := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case skipping:
			skipping = false
		case len(line) > 0:
			f(bytes.TrimRight(line, "\r\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

var months = map[string]time.Month{"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
	"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}

// syslogPrefix splits "TIMESTAMP HOST PROGRAM[PID]: MESSAGE" with an RFC
// 3339 timestamp (rsyslog's default on Debian since 12) or the
// traditional "Mmm dd hh:mm:ss" (Postfix's maillog_file, older syslogs),
// whose year is taken from ref: the latest year that does not put the line
// more than a day after ref.
func syslogPrefix(line string, ref time.Time) (t time.Time, prog, pid, msg string, ok bool) {
	rest := line
	if len(line) >= 15 && line[3] == ' ' && line[6] == ' ' && line[9] == ':' {
		mon, okm := months[line[:3]]
		day, err1 := strconv.Atoi(strings.TrimSpace(line[4:6]))
		hh, err2 := strconv.Atoi(line[7:9])
		mm, err3 := strconv.Atoi(line[10:12])
		ss, err4 := strconv.Atoi(line[13:15])
		if !okm || err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return
		}
		loc := ref.Location()
		t = time.Date(ref.Year(), mon, day, hh, mm, ss, 0, loc)
		if t.After(ref.Add(24 * time.Hour)) {
			t = t.AddDate(-1, 0, 0)
		}
		rest = line[15:]
	} else {
		ts, r, found := strings.Cut(line, " ")
		if !found {
			return
		}
		var err error
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return
		}
		rest = r
	}
	rest = strings.TrimLeft(rest, " ")
	_, rest, found := strings.Cut(rest, " ") // host
	if !found {
		return
	}
	tag, msg, found := strings.Cut(rest, ": ")
	if !found {
		return
	}
	prog = tag
	if i := strings.IndexByte(tag, '['); i > 0 && strings.HasSuffix(tag, "]") {
		prog, pid = tag[:i], tag[i+1:len(tag)-1]
	}
	return t, prog, pid, msg, true
}

// hostIP splits "host[ip]:port" or "host[ip]" at the start of s.
func hostIP(s string) (host, ip string, ok bool) {
	i := strings.IndexByte(s, '[')
	j := strings.IndexByte(s, ']')
	if i <= 0 || j < i {
		return "", "", false
	}
	return strings.ToLower(s[:i]), s[i+1 : j], true
}
