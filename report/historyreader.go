package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// HistoryError is a history record that was not read: corrupt (a line
// that does not parse, a required key missing), or cut short at the end
// of the file (a crash in the middle of a write, or a writer still
// writing). Line is the record's first line; Offset its byte offset.
type HistoryError struct {
	File       string
	Line       int
	Offset     int64
	Incomplete bool // cut short at the end of the input: left for the next run
	Err        error
}

func (e *HistoryError) Error() string {
	if e.Incomplete {
		return fmt.Sprintf("%s:%d: record cut short at the end of the file (left for the next run): %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: corrupt record: %v", e.File, e.Line, e.Err)
}

func (e *HistoryError) Unwrap() error { return e.Err }

// MaxHistoryLine is the longest history line the reader accepts.
const MaxHistoryLine = 64 << 10

// The keys a record must have to be imported: those without which
// opendmarc-import drops or mangles the row (opendmarc-history.md 2.4).
const (
	keyJob = 1 << iota
	keyReporter
	keyReceived
	keyIPAddr
	keyFrom
	keyMailFrom
	keySPF
	keyPDomain
	keyPolicy
	keyPct
	keyADKIM
	keyASPF
	keyP
	keySP
	keyAlignDKIM
	keyAlignSPF
	keyARC
	keyARCPolicy
	keyAction
	keysRequired = keyAction<<1 - 1
)

var keyNames = []string{"job", "reporter", "received", "ipaddr", "from", "mfrom", "spf", "pdomain", "policy",
	"pct", "adkim", "aspf", "p", "sp", "align_dkim", "align_spf", "arc", "arc_policy", "action"}

// HistoryReader reads history records (OpenDMARC 1.4's format, as
// HistoryRecord.AppendFormat writes it and as OpenDMARC writes it, and
// the sidecar format, which adds the keys of HistoryExt) one at a time
// from a stream: memory does not grow with the file; a file may mix both
// formats. Keys may come
// in any order after "job"; unknown keys are skipped (as opendmarc-import
// does, without its warning); blank lines and CR before LF are tolerated.
type HistoryReader struct {
	file   string
	r      *bufio.Reader
	line   int   // lines read so far
	offset int64 // bytes read so far

	pending   []byte // a "job" line read ahead, starting the next record
	pendBuf   []byte // pending's memory
	pendLine  int
	pendStart int64
	eof       bool

	// The values that repeat from record to record, as they appear in
	// the file → as the record holds them: one string for all their
	// records. One table per kind of value, each remembering its last
	// value apart (the reporter, the selector, the envelope and policy
	// domains that are the From domain again).
	reporters, selectors, uris, lower, addrs interned
}

// interned is a table of the values seen first; once full it takes no
// more, so that memory stays flat whatever the file holds (and a file
// with more distinct values than it holds costs no more than without
// it). In front of it, the last value asked for.
type interned struct {
	m        map[string]string
	last     []byte
	lastVal  string
	haveLast bool
}

const maxInterned = 1 << 16

func (t *interned) get(b []byte) (string, bool) {
	if t.haveLast && bytes.Equal(b, t.last) {
		return t.lastVal, true
	}
	v, ok := t.m[string(b)]
	if ok {
		t.remember(b, v)
	}
	return v, ok
}

func (t *interned) put(b []byte, v string) string {
	if t.m == nil {
		t.m = make(map[string]string)
	}
	if len(t.m) < maxInterned {
		t.m[string(b)] = v
	}
	t.remember(b, v)
	return v
}

func (t *interned) remember(b []byte, v string) {
	t.last, t.lastVal, t.haveLast = append(t.last[:0], b...), v, true
}

// str returns b as a string from the table; lowerStr in lower case.
func (t *interned) str(b []byte) string {
	if v, ok := t.get(b); ok {
		return v
	}
	return t.put(b, string(b))
}

func (t *interned) lowerStr(b []byte) string {
	if v, ok := t.get(b); ok {
		return v
	}
	return t.put(b, strings.ToLower(string(b)))
}

// NewHistoryReader reads records from r; file names it in errors.
func NewHistoryReader(r io.Reader, file string) *HistoryReader {
	return &HistoryReader{file: file, r: bufio.NewReaderSize(r, 256<<10)}
}

// readLine returns the next line without its end, whether it ended in LF,
// and io.EOF at the end. A line longer than MaxHistoryLine is returned
// cut, with errLongLine.
func (h *HistoryReader) readLine() ([]byte, bool, error) {
	b, err := h.r.ReadSlice('\n')
	h.offset += int64(len(b))
	if errors.Is(err, bufio.ErrBufferFull) {
		// Skip the rest of the line.
		for errors.Is(err, bufio.ErrBufferFull) {
			var more []byte
			more, err = h.r.ReadSlice('\n')
			h.offset += int64(len(more))
		}
		h.line++
		return nil, err == nil, errLongLine
	}
	if err == io.EOF && len(b) == 0 {
		return nil, false, io.EOF
	}
	h.line++
	if len(b) > MaxHistoryLine+2 {
		return nil, err == nil, errLongLine
	}
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	lf := err == nil
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, lf, nil
}

var errLongLine = fmt.Errorf("line longer than %d bytes", MaxHistoryLine)

// Next returns the next record. A record that cannot be read comes back as
// a *HistoryError (the reader goes on with the next record on the next
// call); the end of the input is io.EOF; any other error is the reader's.
func (h *HistoryReader) Next() (*HistoryRecord, error) {
	rec := &HistoryRecord{}
	if err := h.NextInto(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// NextInto reads the next record into rec as Next does, reusing the
// memory of rec's DKIM and RUA lists: a reader of many records that
// keeps none of them (an import) allocates one record, not one per
// record. After an error rec holds nothing of use.
func (h *HistoryReader) NextInto(rec *HistoryRecord) error {
	var (
		started   bool
		have      int
		bad       error
		startLine int
		start     int64
		lastLF    = true
	)
	reset := func(n int, off int64) {
		*rec = HistoryRecord{DKIM: rec.DKIM[:0], RUA: rec.RUA[:0]}
		started, have, bad, startLine, start = true, 0, nil, n, off
	}
	begin := func(line []byte, n int, off int64) {
		reset(n, off)
		h.parseLine(rec, line, &have, &bad)
	}
	if h.pending != nil {
		begin(h.pending, h.pendLine, h.pendStart)
		h.pending = nil
	}
	for !h.eof {
		off := h.offset
		line, lf, err := h.readLine()
		if err == io.EOF {
			h.eof = true
			break
		}
		if err != nil && err != errLongLine {
			return err
		}
		lastLF = lf
		if err == errLongLine {
			if !started {
				reset(h.line, off)
			}
			if bad == nil {
				bad = fmt.Errorf("line %d: %w", h.line, err)
			}
			continue
		}
		if len(line) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte("job ")) || bytes.Equal(line, []byte("job")) {
			if started {
				h.pendBuf = append(h.pendBuf[:0], line...)
				h.pending = h.pendBuf
				h.pendLine, h.pendStart = h.line, off
				return h.finish(have, bad, startLine, start)
			}
			begin(line, h.line, off)
			continue
		}
		if !started {
			// Lines before the first "job": the tail of a record whose
			// start is not in this file. One error for the run of them.
			reset(h.line, off)
			bad = errors.New(`lines before the first "job" line`)
			have = keysRequired
			continue
		}
		h.parseLine(rec, line, &have, &bad)
	}
	if !started {
		return io.EOF
	}
	// The last record: cut short when its last line has no end (whatever
	// that line holds), or when it ends before its required keys.
	if !lastLF {
		return &HistoryError{File: h.file, Line: startLine, Offset: start, Incomplete: true, Err: errors.New("no line end")}
	}
	if bad == nil && have&keysRequired != keysRequired {
		return &HistoryError{File: h.file, Line: startLine, Offset: start, Incomplete: true, Err: fmt.Errorf("missing %s", missingKeys(have))}
	}
	return h.finish(have, bad, startLine, start)
}

func (h *HistoryReader) finish(have int, bad error, line int, off int64) error {
	if bad == nil && have&keysRequired != keysRequired {
		bad = fmt.Errorf("missing %s", missingKeys(have))
	}
	if bad != nil {
		return &HistoryError{File: h.file, Line: line, Offset: off, Err: bad}
	}
	return nil
}

func missingKeys(have int) string {
	var miss []string
	for i, n := range keyNames {
		if have&(1<<i) == 0 {
			miss = append(miss, n)
		}
	}
	return strings.Join(miss, ", ")
}

// parseLine applies one "key value" line to rec; the first problem of the
// record goes to *bad.
func (h *HistoryReader) parseLine(rec *HistoryRecord, line []byte, have *int, bad *error) {
	key, value, _ := bytes.Cut(line, []byte(" "))
	fail := func(format string, a ...any) {
		if *bad == nil {
			*bad = fmt.Errorf("line %d: %s: %s", h.line, key, fmt.Sprintf(format, a...))
		}
	}
	once := func(bit int) bool {
		if *have&bit != 0 {
			fail("repeated")
			return false
		}
		*have |= bit
		return true
	}
	num := func(bit int, dst *int, lo, hi int) {
		if !once(bit) {
			return
		}
		n, err := strconv.Atoi(string(value))
		if err != nil || n < lo || n > hi {
			fail("%q is not a number from %d to %d", value, lo, hi)
			return
		}
		*dst = n
	}
	word := func(bit int, dst *string, empty bool, t *interned) {
		if !once(bit) {
			return
		}
		if (!empty && len(value) == 0) || bytes.IndexByte(value, ' ') >= 0 {
			fail("%q is not one word", value)
			return
		}
		if t == &h.lower {
			*dst = t.lowerStr(value)
		} else {
			*dst = t.str(value)
		}
	}
	switch string(key) {
	case "job":
		if once(keyJob) {
			if len(value) == 0 || bytes.IndexByte(value, ' ') >= 0 {
				fail("%q is not one word", value)
			} else {
				rec.JobID = string(value) // one per record: not interned
			}
		}
	case "reporter":
		word(keyReporter, &rec.Reporter, false, &h.reporters)
	case "received":
		var n int
		num(keyReceived, &n, 1, 1<<40)
		rec.Received = time.Unix(int64(n), 0)
	case "ipaddr":
		if once(keyIPAddr) {
			if v, ok := h.addrs.get(value); ok {
				rec.IPAddr = v
				break
			}
			a, err := netip.ParseAddr(string(value))
			if err != nil {
				fail("%q is not an IP address", value)
				rec.IPAddr = "invalid IP"
				break
			}
			rec.IPAddr = h.addrs.put(value, a.Unmap().String())
		}
	case "from":
		word(keyFrom, &rec.From, false, &h.lower)
	case "mfrom":
		word(keyMailFrom, &rec.MailFrom, true, &h.lower)
	case "pdomain":
		word(keyPDomain, &rec.PolicyDomain, false, &h.lower)
	case "dkim":
		var fields [4][]byte
		f := splitFields(value, fields[:0])
		if len(f) != 3 {
			fail("%q is not \"domain selector result\"", value)
			return
		}
		res, err := strconv.Atoi(string(f[2]))
		if err != nil || res < -1 || res > 12 {
			fail("result %q is not a result code", f[2])
			return
		}
		rec.DKIM = append(rec.DKIM, HistoryDKIM{Domain: h.lower.lowerStr(f[0]), Selector: h.selectors.str(f[1]), Result: ARES(res)})
	case "spf":
		var n int
		num(keySPF, &n, -1, 12)
		rec.SPF = ARES(n)
	case "policy":
		num(keyPolicy, &rec.Policy, 13, 18)
	case "rua":
		if len(value) == 0 || bytes.IndexByte(value, ' ') >= 0 {
			fail("%q is not one URI", value)
		} else if string(value) != "-" {
			rec.RUA = append(rec.RUA, h.uris.str(value))
		}
	case "pct":
		num(keyPct, &rec.Pct, 0, 100)
	case "adkim":
		num(keyADKIM, &rec.ADKIM, 0, 127)
	case "aspf":
		num(keyASPF, &rec.ASPF, 0, 127)
	case "p":
		num(keyP, &rec.P, 0, 127)
	case "sp":
		num(keySP, &rec.SP, 0, 127)
	case "align_dkim":
		num(keyAlignDKIM, &rec.AlignDKIM, 0, 5)
	case "align_spf":
		num(keyAlignSPF, &rec.AlignSPF, 0, 5)
	case "arc":
		var n int
		num(keyARC, &n, -1, 12)
		rec.ARC = ARES(n)
	case "arc_policy":
		if !once(keyARCPolicy) {
			return
		}
		code, data, _ := bytes.Cut(value, []byte(" "))
		n, err := strconv.Atoi(string(code))
		if err != nil || n < 0 || n > 2 {
			fail("%q is not a policy code", code)
			return
		}
		rec.ARCPolicy = n
		j, ok := bytes.CutPrefix(data, []byte("json:"))
		if !ok {
			fail(`no "json:[…]" after the code (opendmarc-import dies on this)`)
			return
		}
		if seals, err := parseSeals(j); err != nil {
			fail("%v", err)
		} else {
			rec.ARCSeals = seals
		}
	case "action":
		num(keyAction, &rec.Action, 0, 4)
	default:
		parseExt(rec, key, value, once, fail)
	}
}

// splitFields appends the fields of b to f, as bytes.Fields splits them,
// without allocating for ASCII text.
func splitFields(b []byte, f [][]byte) [][]byte {
	start := -1
	for i, c := range b {
		switch {
		case c >= utf8.RuneSelf:
			return bytes.Fields(b)
		case c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			if start >= 0 {
				f, start = append(f, b[start:i]), -1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		f = append(f, b[start:])
	}
	return f
}

// parseSeals decodes the arc_policy JSON array.
func parseSeals(j []byte) ([]ARCSeal, error) {
	j = bytes.TrimSpace(j)
	if string(j) == "[]" {
		return nil, nil
	}
	var raw []struct {
		I  *int   `json:"i"`
		D  string `json:"d"`
		S  string `json:"s"`
		IP string `json:"ip"`
	}
	if err := json.Unmarshal(j, &raw); err != nil {
		return nil, fmt.Errorf("ARC seals: %v", err)
	}
	seals := make([]ARCSeal, 0, len(raw))
	for _, r := range raw {
		if r.I == nil {
			return nil, errors.New(`ARC seal without "i"`)
		}
		seals = append(seals, ARCSeal{Instance: *r.I, Domain: r.D, Selector: r.S, IP: r.IP})
	}
	return seals, nil
}
