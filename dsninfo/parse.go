package dsninfo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
)

// Top is what the parser needs of the message's own header and envelope
// when it is given only the body (NewParser): the milter has the header
// fields already.
type Top struct {
	ContentType             string // the Content-Type field's value
	ContentTransferEncoding string
	From                    string // the From field's value
	Subject                 string
	// NullSender: the envelope sender is known to be <> (RFC 5321
	// §4.5.5 gives every DSN a null sender).
	NullSender bool
}

// Looks reports whether a message with this header and envelope might be
// a delivery status notification and is worth parsing: a multipart/report,
// a null sender, or a From or Subject of a bounce. Other messages can skip
// the parser altogether.
func (t Top) Looks() bool {
	mt, _ := mediaType(t.ContentType)
	return mt == "multipart/report" || t.NullSender || bounceHint(t)
}

// handler kinds: what the lines of the current part's body are for.
type handler int

const (
	hSkip     handler = iota
	hFields           // a delivery-status body
	hOriginal         // the header of the returned message
	hText             // text scanned for a plain-text bounce
	hPreamble         // the preamble or epilogue of a multipart
)

// part is the state of the MIME part being read.
type part struct {
	inHeader    bool
	headerBytes int
	ctype, cte  string
	handler     handler
	dec         *decoder // nil for 7bit, 8bit, binary
}

// Parser reads a message's body as it streams past (Write) and says what
// it was (Close). Its memory is bounded by its Limits whatever it is fed.
type Parser struct {
	lim   Limits
	rep   Report
	top   Top
	guess bool // scan text for a plain-text bounce

	lines lineSplitter

	bounds []string // boundaries of the open multiparts, outermost first
	cur    part
	parts  int

	hdr     fieldReader // part headers
	fields  fieldReader // the delivery-status body
	orig    fieldReader // the returned message's header
	scan    scanner
	sawDS   bool // a delivery-status part was read
	inGroup bool // a field was read since the last blank line of the delivery-status body
	rc      *Recipient
	spare   Recipient // where the fields of recipients beyond MaxRecipients go
	isMulti bool      // the top level is a multipart/report
	noBound bool
}

// NewParser returns a parser for the body of a message whose header and
// envelope top describes.
func NewParser(top Top, lim Limits) *Parser {
	p := &Parser{lim: lim.withDefaults(), top: top}
	p.lines.max = p.lim.MaxLine
	p.rep.Kind = NotDSN
	p.hdr = fieldReader{max: p.lim.MaxValue, emit: p.partField}
	p.fields = fieldReader{max: p.lim.MaxValue, emit: p.dsnField}
	p.orig = fieldReader{max: p.lim.MaxValue, emit: p.origField}
	p.scan.lim = p.lim.MaxScan
	p.scan.maxRcpt = p.lim.MaxRecipients
	mt, params := mediaType(top.ContentType)
	p.isMulti = mt == "multipart/report"
	if p.isMulti {
		p.rep.ReportType = strings.ToLower(params["report-type"])
	}
	p.guess = !p.isMulti && (top.NullSender || bounceHint(top))
	p.cur = part{ctype: top.ContentType, cte: top.ContentTransferEncoding}
	p.startBody()
	if p.isMulti && len(p.bounds) == 0 {
		p.noBound = true
	}
	return p
}

// Write reads the next bytes of the body. It never fails.
func (p *Parser) Write(b []byte) (int, error) {
	p.lines.feed(b, p.rawLine)
	return len(b), nil
}

// Close ends the body and returns what the message was.
func (p *Parser) Close() *Report {
	p.lines.flush(p.rawLine)
	p.endPart()
	r := &p.rep
	r.Truncated = r.Truncated || p.lines.truncated || p.hdr.truncated || p.fields.truncated || p.orig.truncated
	switch {
	case p.sawDS && (len(r.Recipients) > 0 || r.MoreRecipients > 0):
		r.Kind = DSN
	case p.sawDS:
		r.Kind, r.Reason = Unparsed, "the delivery-status part has no per-recipient fields"
	case p.isMulti && r.ReportType != "" && r.ReportType != "delivery-status" && r.ReportType != "global-delivery-status":
		r.Kind, r.Reason = NotDSN, "a multipart/report of report-type "+r.ReportType
	case p.noBound:
		r.Kind, r.Reason = Unparsed, "multipart/report without a boundary"
	case p.isMulti:
		r.Kind, r.Reason = Unparsed, "no message/delivery-status part"
	case p.guess && (len(p.scan.found) > 0 || bounceHint(p.top)):
		r.Kind = Guessed
		r.Recipients = p.scan.found
		r.MoreRecipients = p.scan.more
	default:
		r.Kind, r.Reason = NotDSN, "no delivery report and no bounce text"
	}
	out := *r
	return &out
}

// rawLine is one line of the body as it came, before any transfer
// decoding.
func (p *Parser) rawLine(l []byte) {
	if len(p.bounds) > 0 && len(l) >= 2 && l[0] == '-' && l[1] == '-' && p.boundary(l) {
		return
	}
	if p.cur.inHeader {
		p.headerLine(l)
		return
	}
	if p.cur.dec != nil {
		p.cur.dec.line(l, p.bodyLine)
		return
	}
	p.bodyLine(l)
}

// boundary handles a line that may be a delimiter of an open multipart
// (RFC 2046 §5.1.1), the innermost first, and reports whether it was one.
func (p *Parser) boundary(l []byte) bool {
	l = bytes.TrimRight(l[2:], " \t")
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if !bytes.HasPrefix(l, []byte(b)) {
			continue
		}
		rest := l[len(b):]
		closing := string(rest) == "--"
		if len(rest) != 0 && !closing {
			continue
		}
		p.endPart()
		p.bounds = p.bounds[:i+1]
		if closing {
			p.bounds = p.bounds[:i]
			p.cur = part{handler: hPreamble}
			return true
		}
		p.parts++
		p.cur = part{inHeader: true, ctype: "text/plain"}
		return true
	}
	return false
}

func (p *Parser) headerLine(l []byte) {
	p.cur.headerBytes += len(l) + 2
	if p.cur.headerBytes > p.lim.MaxHeader {
		p.rep.Truncated = true
		if len(bytes.TrimSpace(l)) != 0 {
			return // read past the rest of an oversized header
		}
	}
	if len(l) > 0 && l[0] != ' ' && l[0] != '\t' && !mimeField(l) {
		// A part's header holds MIME fields only (RFC 2045 §3): any other
		// field means the blank line after the header is missing and the
		// body has begun.
		p.hdr.flush()
		p.cur.inHeader = false
		p.startBody()
		p.rawLine(l)
		return
	}
	switch p.hdr.line(l) {
	case lineBlank:
		p.cur.inHeader = false
		p.startBody()
	case lineOther:
		// No blank line after the header: this line is the body's first.
		p.cur.inHeader = false
		p.startBody()
		p.rawLine(l)
	}
}

// mimeField reports whether l starts a Content-* or MIME-Version field.
func mimeField(l []byte) bool {
	name, _, ok := bytes.Cut(l, []byte{':'})
	if !ok {
		return false
	}
	name = bytes.TrimRight(name, " \t")
	return (len(name) > 8 && bytes.EqualFold(name[:8], []byte("content-"))) || bytes.EqualFold(name, []byte("mime-version"))
}

func (p *Parser) partField(name, value string) {
	switch name {
	case "content-type":
		p.cur.ctype = value
	case "content-transfer-encoding":
		p.cur.cte = value
	}
}

// startBody decides what the body of the current part is for.
func (p *Parser) startBody() {
	mt, params := mediaType(p.cur.ctype)
	if mt == "" {
		mt = "text/plain"
	}
	p.cur.handler = hSkip
	if p.parts > p.lim.MaxParts {
		p.rep.Skipped++
		return
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		b := params["boundary"]
		if b == "" || len(b) > 200 {
			return
		}
		if len(p.bounds) >= p.lim.MaxDepth {
			p.rep.Skipped++
			return
		}
		p.bounds = append(p.bounds, b)
		p.cur.handler = hPreamble
		return
	case mt == "message/delivery-status" || mt == "message/global-delivery-status" || mt == "text/delivery-status":
		if p.sawDS || (!p.isMulti && !p.nestedReport()) {
			p.rep.Skipped++
			return
		}
		p.sawDS = true
		p.rep.Global = mt == "message/global-delivery-status"
		p.cur.handler = hFields
		p.rc, p.inGroup = nil, false
	case mt == "message/rfc822" || mt == "message/global" || mt == "text/rfc822-headers" || mt == "message/global-headers":
		if p.rep.Original.Found {
			return
		}
		p.rep.Original.Found = true
		p.cur.handler = hOriginal
	case mt == "text/plain" && p.guess:
		p.cur.handler = hText
	default:
		return
	}
	p.cur.dec = newDecoder(p.cur.cte, p.lim.MaxLine)
}

// nestedReport: a delivery-status part outside a top-level
// multipart/report counts only inside a multipart/report nested in the
// message (a report forwarded in a multipart/mixed, say): the
// report-type of the innermost multipart is not kept, so any multipart
// nesting is accepted.
func (p *Parser) nestedReport() bool { return len(p.bounds) > 0 }

// endPart ends the body of the current part.
func (p *Parser) endPart() {
	if p.cur.inHeader {
		p.hdr.flush()
	}
	if p.cur.dec != nil {
		p.cur.dec.flush(p.bodyLine)
	}
	switch p.cur.handler {
	case hFields:
		p.fields.flush()
	case hOriginal:
		p.orig.flush()
	}
}

// bodyLine is one decoded line of the current part's body.
func (p *Parser) bodyLine(l []byte) {
	switch p.cur.handler {
	case hFields:
		if p.fields.line(l) == lineBlank {
			p.inGroup = false
			p.rc = nil
		}
	case hOriginal:
		if p.orig.line(l) == lineBlank {
			p.cur.handler = hSkip // the returned message's body
		}
	case hText:
		p.scan.line(l)
	}
}

// dsnField takes one field of a delivery-status body (RFC 3464 §2.2, §2.3).
func (p *Parser) dsnField(name, v string) {
	r := &p.rep
	switch name {
	case "reporting-mta":
		if p.rc == nil && r.ReportingMTA.Value == "" {
			r.ReportingMTA = typed(v)
		}
		return
	case "original-envelope-id":
		r.OriginalEnvelopeID = v
		return
	case "dsn-gateway":
		r.DSNGateway = typed(v)
		return
	case "received-from-mta":
		r.ReceivedFromMTA = typed(v)
		return
	case "arrival-date":
		r.ArrivalDate = v
		return
	}
	set, ok := recipientFields[name]
	if !ok {
		return // an extension field this parser does not know
	}
	rc := p.rc
	newGroup := rc == nil ||
		(name == "original-recipient" && rc.OriginalRecipient.Value != "") ||
		(name == "final-recipient" && rc.FinalRecipient.Value != "")
	if newGroup {
		// A group starts at the first field after a blank line, or where
		// a second recipient's address shows one was left out.
		if len(r.Recipients) < p.lim.MaxRecipients {
			r.Recipients = append(r.Recipients, Recipient{})
			p.rc = &r.Recipients[len(r.Recipients)-1]
		} else {
			r.MoreRecipients++
			p.spare = Recipient{}
			p.rc = &p.spare
		}
	}
	set(p.rc, v)
}

// recipientFields are the per-recipient fields of RFC 3464 §2.3 and
// Exim's, and where each goes.
var recipientFields = map[string]func(rc *Recipient, v string){
	"original-recipient": func(rc *Recipient, v string) { rc.OriginalRecipient = typed(v) },
	"final-recipient":    func(rc *Recipient, v string) { rc.FinalRecipient = typed(v) },
	"action": func(rc *Recipient, v string) {
		a, _, _ := strings.Cut(v, " ")
		rc.Action = Action(strings.ToLower(a))
	},
	"status": func(rc *Recipient, v string) { rc.Status, _ = ParseStatus(v) },
	"remote-mta": func(rc *Recipient, v string) {
		if t := typed(v); strings.EqualFold(t.Type, "x-ip") {
			rc.RemoteIP = t.Value
		} else {
			rc.RemoteMTA = t
		}
	},
	"diagnostic-code":            func(rc *Recipient, v string) { rc.DiagnosticCode = typed(v) },
	"last-attempt-date":          func(rc *Recipient, v string) { rc.LastAttemptDate = v },
	"will-retry-until":           func(rc *Recipient, v string) { rc.WillRetryUntil = v },
	"final-log-id":               func(rc *Recipient, v string) { rc.FinalLogID = v },
	"x-remote-mta-smtp-greeting": func(rc *Recipient, v string) { rc.RemoteSMTPGreeting = typed(v).Value },
	"x-remote-mta-helo-response": func(rc *Recipient, v string) { rc.RemoteHeloResponse = typed(v).Value },
	"x-exim-diagnostic":          func(rc *Recipient, v string) { rc.ReportingDiagnostic = typed(v).Value },
}

var wordDecoder = mime.WordDecoder{}

// origField takes one field of the returned message's header.
func (p *Parser) origField(name, v string) {
	o := &p.rep.Original
	switch name {
	case "message-id":
		if o.MessageID == "" {
			o.MessageID = strings.TrimSpace(strings.Trim(strings.TrimSpace(v), "<>"))
		}
	case "from":
		o.From = decodeWords(v)
	case "to":
		o.To = decodeWords(v)
	case "subject":
		o.Subject = decodeWords(v)
	case "date":
		o.Date = v
	}
}

// decodeWords decodes RFC 2047 encoded words, keeping v as it is when it
// cannot (an unknown charset).
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return clean(d)
}

// Parse reads a whole message — header and body — from r and returns what
// it was. The error is r's; a message that is not a report is not an
// error.
func Parse(r io.Reader, lim Limits) (*Report, error) {
	lim = lim.withDefaults()
	br := bufio.NewReaderSize(r, 32<<10)
	top := map[string]string{}
	hdr := fieldReader{max: lim.MaxValue, emit: func(name, v string) {
		if _, seen := top[name]; !seen {
			top[name] = v
		}
	}}
	var first []byte // a body line met where the header had no blank line
	read, lineBuf := 0, make([]byte, 0, 1024)
	for {
		line, err := readLine(br, &lineBuf, lim.MaxLine)
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		read += len(line) + 2
		if read > lim.MaxHeader && len(bytes.TrimSpace(line)) > 0 {
			continue
		}
		k := hdr.line(line)
		if k == lineBlank {
			break
		}
		if k == lineOther {
			first = append([]byte(nil), line...)
			break
		}
		if err != nil {
			break
		}
	}
	hdr.flush()
	p := NewParser(Top{
		ContentType: top["content-type"], ContentTransferEncoding: top["content-transfer-encoding"],
		From: top["from"], Subject: top["subject"], NullSender: strings.TrimSpace(top["return-path"]) == "<>",
	}, lim)
	if first != nil {
		p.Write(first)
		p.Write([]byte("\r\n"))
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		p.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return p.Close(), nil
}

// readLine reads one line (without its line end) into *buf, keeping at
// most max bytes of it.
func readLine(br *bufio.Reader, buf *[]byte, max int) ([]byte, error) {
	b := (*buf)[:0]
	for {
		frag, err := br.ReadSlice('\n')
		if room := max - len(b); room > 0 {
			b = append(b, frag[:min(len(frag), room)]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		*buf = b
		b = bytes.TrimSuffix(b, []byte{'\n'})
		b = bytes.TrimSuffix(b, []byte{'\r'})
		return b, err
	}
}
