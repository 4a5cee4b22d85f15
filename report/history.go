package report

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/dmarc"
)

// ARES is an OpenDMARC Authentication-Results result code
// (opendmarc-ar.h), the number the history file writes for SPF, DKIM and
// ARC results.
type ARES int

// The codes.
const (
	ARESUndefined ARES = -1 // no result (history: "spf -1")
	ARESPass      ARES = 0
	ARESSoftFail  ARES = 2
	ARESNeutral   ARES = 3
	ARESTempError ARES = 4
	ARESPermError ARES = 5
	ARESNone      ARES = 6
	ARESFail      ARES = 7
	ARESPolicy    ARES = 8
	ARESNXDomain  ARES = 9
	ARESSigned    ARES = 10
	ARESUnknown   ARES = 11
	ARESDiscard   ARES = 12
)

// ARESCode maps an RFC 8601 result token (any case) to its code; "" and
// unknown tokens give ARESUndefined.
func ARESCode(token string) ARES {
	switch strings.ToLower(token) {
	case "pass":
		return ARESPass
	case "softfail":
		return ARESSoftFail
	case "neutral":
		return ARESNeutral
	case "temperror":
		return ARESTempError
	case "permerror":
		return ARESPermError
	case "none":
		return ARESNone
	case "fail", "hardfail":
		return ARESFail
	case "policy":
		return ARESPolicy
	case "nxdomain":
		return ARESNXDomain
	case "signed":
		return ARESSigned
	case "unknown":
		return ARESUnknown
	case "discard":
		return ARESDiscard
	}
	return ARESUndefined
}

// Codes of the history file's "policy" line (OpenDMARC's DMARC_POLICY_*).
const (
	HistoryPolicyNoFrom     = 13 // no From domain
	HistoryPolicyAbsent     = 14 // no record (also temperror)
	HistoryPolicyPass       = 15
	HistoryPolicyReject     = 16
	HistoryPolicyQuarantine = 17
	HistoryPolicyNone       = 18
)

// Codes of the "align_dkim" and "align_spf" lines.
const (
	HistoryAlignNoRecord = 0
	HistoryAlignPass     = 4
	HistoryAlignFail     = 5
)

// Codes of the "action" line: what was done with the message.
const (
	HistoryActionReject     = 0
	HistoryActionDiscard    = 1
	HistoryActionAccept     = 2
	HistoryActionTempFail   = 3
	HistoryActionQuarantine = 4
)

// HistoryDKIM is one "dkim" line: d=, s= ("-" when unknown) and result.
type HistoryDKIM struct {
	Domain   string
	Selector string
	Result   ARES
}

// ARCSeal is one entry of the "arc_policy" JSON array.
type ARCSeal struct {
	Instance int    // i=
	Domain   string // d=
	Selector string // s=
	IP       string
}

// HistoryRecord is one message in OpenDMARC 1.4's history file format,
// the input of opendmarc-import. Numeric fields hold the codes
// OpenDMARC writes: ASCII codes for adkim, aspf, p and sp ('r' = 114), 0
// when there is no record.
type HistoryRecord struct {
	JobID        string    // the queue ID; "" is written "(unknown-jobid)"
	Reporter     string    // the receiving host's name (macro j)
	Received     time.Time // end of message; written as Unix seconds
	IPAddr       string    // the SMTP client's address
	From         string    // the Author Domain
	MailFrom     string    // the envelope sender's domain; "" for <>
	DKIM         []HistoryDKIM
	SPF          ARES // ARESUndefined when SPF was not checked
	PolicyDomain string
	Policy       int      // HistoryPolicy*
	RUA          []string // as published; none is written "rua -"
	Pct          int      // pct= (100 when absent), 0 without record
	ADKIM, ASPF  int      // 'r' or 's', 0 without record
	P, SP        int      // 'n', 'q' or 'r'; SP is 0 when sp= is not published
	AlignDKIM    int      // HistoryAlign*
	AlignSPF     int
	ARC          ARES // ARESPass for one trusted arc=pass, else ARESFail
	ARCPolicy    int  // 0 pass, 2 fail
	ARCSeals     []ARCSeal
	Action       int // HistoryAction*
	// Ext is the sidecar format's extension, written after Action; nil
	// for OpenDMARC's format.
	Ext *HistoryExt
}

// NewHistoryRecord fills a history record from an evaluation: From,
// DKIM and SPF lines, policy domain and codes, record tags, alignment,
// the action (from Outcome.Action: accept unless quarantine or reject),
// and ARC as "fail, no seals". The caller sets JobID, Reporter, Received
// (HistoryFile.Append fills a zero one), IPAddr and MailFrom, and ARC
// when it evaluated ARC.
func NewHistoryRecord(in dmarc.Input, o dmarc.Outcome) *HistoryRecord {
	h := &HistoryRecord{
		From: o.FromDomain, PolicyDomain: o.UsedDomain, SPF: ARESCode(in.SPF.Result),
		ARC: ARESFail, ARCPolicy: 2, Action: HistoryActionAccept,
	}
	for _, d := range in.DKIM {
		sel := d.Selector
		if sel == "" {
			sel = "-"
		}
		h.DKIM = append(h.DKIM, HistoryDKIM{Domain: strings.ToLower(d.Domain), Selector: sel, Result: ARESCode(d.Result)})
	}
	switch o.Status {
	case dmarc.StatusAccept:
		h.Policy = HistoryPolicyPass
	case dmarc.StatusReject:
		h.Policy = HistoryPolicyReject
	case dmarc.StatusQuarantine:
		h.Policy = HistoryPolicyQuarantine
	case dmarc.StatusNone:
		h.Policy = HistoryPolicyNone
	case dmarc.StatusNoFrom:
		h.Policy = HistoryPolicyNoFrom
	default:
		h.Policy = HistoryPolicyAbsent
	}
	switch o.Action {
	case dmarc.PolicyReject:
		h.Action = HistoryActionReject
	case dmarc.PolicyQuarantine:
		h.Action = HistoryActionQuarantine
	}
	if r := o.Record; r != nil {
		h.RUA = append([]string(nil), r.RUA...)
		h.Pct = r.Percent
		h.ADKIM, h.ASPF = int(r.DKIMAlignment[0]), int(r.SPFAlignment[0])
		h.P = int(r.Policy[0])
		if r.SubdomainPolicy != "" {
			h.SP = int(r.SubdomainPolicy[0])
		}
		h.AlignDKIM, h.AlignSPF = HistoryAlignFail, HistoryAlignFail
		if o.AlignDKIM {
			h.AlignDKIM = HistoryAlignPass
		}
		if o.AlignSPF {
			h.AlignSPF = HistoryAlignPass
		}
	}
	return h
}

// AppendFormat appends the record in the history file format: one
// "key value" line per item, LF line ends, in OpenDMARC's order, then
// the sidecar format's keys when Ext is set, no blank line after it. Values are written on one line: control
// characters and spaces inside a value become "_" so that a hostile
// value cannot start a line of its own or shift opendmarc-import's
// space-separated fields.
func (h *HistoryRecord) AppendFormat(b []byte) []byte {
	line := func(key string, values ...string) { b = appendLine(b, key, values...) }
	num := func(key string, n int) { b = appendNum(b, key, n) }
	job := h.JobID
	if job == "" {
		job = "(unknown-jobid)"
	}
	line("job", job)
	line("reporter", h.Reporter)
	b = append(b, "received "...)
	if !h.Received.IsZero() {
		b = strconv.AppendInt(b, h.Received.Unix(), 10)
	} else {
		b = append(b, '0')
	}
	b = append(b, '\n')
	line("ipaddr", h.IPAddr)
	line("from", h.From)
	line("mfrom", h.MailFrom)
	for _, d := range h.DKIM {
		sel := d.Selector
		if sel == "" {
			sel = "-"
		}
		line("dkim", d.Domain, sel, strconv.Itoa(int(d.Result)))
	}
	num("spf", int(h.SPF))
	line("pdomain", h.PolicyDomain)
	num("policy", h.Policy)
	b = appendList(b, "rua", h.RUA)
	num("pct", h.Pct)
	num("adkim", h.ADKIM)
	num("aspf", h.ASPF)
	num("p", h.P)
	num("sp", h.SP)
	num("align_dkim", h.AlignDKIM)
	num("align_spf", h.AlignSPF)
	num("arc", int(h.ARC))
	b = append(b, "arc_policy "...)
	b = strconv.AppendInt(b, int64(h.ARCPolicy), 10)
	b = append(b, " json:["...)
	for i, s := range h.ARCSeals {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, `{ "i": `...)
		b = strconv.AppendInt(b, int64(s.Instance), 10)
		b = append(b, `, "d":`...)
		b = appendJSONString(b, s.Domain)
		b = append(b, `, "s":`...)
		b = appendJSONString(b, s.Selector)
		b = append(b, `, "ip":`...)
		b = appendJSONString(b, s.IP)
		b = append(b, ` }`...)
	}
	b = append(b, "]\n"...)
	num("action", h.Action)
	if h.Ext != nil {
		b = h.Ext.appendExt(b)
	}
	return b
}

// Format writes the record to w in one Write call.
func (h *HistoryRecord) Format(w io.Writer) error {
	_, err := w.Write(h.AppendFormat(nil))
	return err
}

// appendLine appends a "key value…" line, each value cleaned.
func appendLine(b []byte, key string, values ...string) []byte {
	b = append(b, key...)
	for _, v := range values {
		b = append(b, ' ')
		b = appendClean(b, v)
	}
	return append(b, '\n')
}

// appendList appends one "key value" line per value, or "key -" when
// there is none.
func appendList(b []byte, key string, values []string) []byte {
	if len(values) == 0 {
		return appendLine(b, key, "-")
	}
	for _, v := range values {
		b = appendLine(b, key, v)
	}
	return b
}

// appendNum appends a "key number" line.
func appendNum(b []byte, key string, n int) []byte {
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\n')
}

// appendClean appends a value with spaces and control characters
// replaced by "_".
func appendClean(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends s as a JSON string, ASCII-only.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// HistoryFile appends history records to a file (dmarc_history_file):
// each record in a single write(2) on a file opened with O_APPEND, under
// a mutex, so records of concurrent sessions never interleave and a
// reader never sees half a record beyond the one being written.
//
// Rotation: opendmarc-importstats renames the file, imports and deletes
// the renamed copy without telling the writer. Append therefore checks
// before each record that the path still names the open file (one
// stat(2)) and reopens it otherwise, so no record goes to a file that is
// about to be deleted; Reopen does the same on demand (SIGHUP).
type HistoryFile struct {
	path string
	// Now stamps records whose Received is zero; nil means time.Now.
	Now func() time.Time

	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// HistoryFileMode is the permission of a history file Append creates.
const HistoryFileMode os.FileMode = 0o640

// OpenHistoryFile opens (creating it if needed) the history file.
func OpenHistoryFile(path string) (*HistoryFile, error) {
	h := &HistoryFile{path: path}
	if err := h.open(); err != nil {
		return nil, err
	}
	return h, nil
}

// Path returns the file's path.
func (h *HistoryFile) Path() string { return h.path }

func (h *HistoryFile) open() error {
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, HistoryFileMode)
	if err != nil {
		return err
	}
	if h.f != nil {
		h.f.Close()
	}
	h.f = f
	return nil
}

// ErrHistoryClosed is returned by Append after Close.
var ErrHistoryClosed = errors.New("report: history file closed")

// Append writes one record.
func (h *HistoryFile) Append(r *HistoryRecord) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return ErrHistoryClosed
	}
	if r.Received.IsZero() {
		c := *r
		c.Received = time.Now()
		if h.Now != nil {
			c.Received = h.Now()
		}
		r = &c
	}
	if err := h.followRename(); err != nil {
		return err
	}
	h.buf = r.AppendFormat(h.buf[:0])
	_, err := h.f.Write(h.buf)
	return err
}

// followRename reopens the path when it no longer names the open file.
func (h *HistoryFile) followRename() error {
	pathInfo, err := os.Stat(h.path)
	if err == nil {
		if fileInfo, ferr := h.f.Stat(); ferr == nil && os.SameFile(pathInfo, fileInfo) {
			return nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return h.open()
}

// Reopen closes and reopens the file at its path (after rotation).
func (h *HistoryFile) Reopen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return ErrHistoryClosed
	}
	return h.open()
}

// Close closes the file; later Appends fail.
func (h *HistoryFile) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}
