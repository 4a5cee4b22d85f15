package forensic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// MaxARFSize bounds what ParseARF reads.
const MaxARFSize = 16 << 20

// Feedback is what ParseARF read from an ARF report (RFC 5965, RFC 6591):
// the fields of its message/feedback-report part, and the reported
// message's header (and body, when the report carries it).
type Feedback struct {
	FeedbackType          string // "auth-failure", "abuse", … (lower case)
	Version               int
	UserAgent             string
	AuthFailure           string // "dmarc", "bodyhash", … (lower case)
	IdentityAlignment     string
	DeliveryResult        string
	SourceIP              string // the address, without a comment
	ReportedDomain        []string
	OriginalMailFrom      string
	OriginalRcptTo        []string
	OriginalEnvelopeID    string
	AuthenticationResults []string // unfolded
	ReportingMTA          string   // without the "dns;" type
	Arrival               time.Time
	DKIMDomain            string
	DKIMSelector          string
	DKIMIdentity          string
	// Fields are every field of the feedback-report part.
	Fields textproto.MIMEHeader
	// Header is the reported message's header section (LF line ends);
	// Body its body, nil with text/rfc822-headers.
	Header []byte
	Body   []byte
	// OriginalType is the media type of the third part:
	// "message/rfc822" or "text/rfc822-headers".
	OriginalType string
}

// ErrNotARF: the message is not a multipart/report of report-type
// feedback-report with a message/feedback-report part.
var ErrNotARF = errors.New("not an ARF report")

// ParseARF reads an ARF report mail.
func ParseARF(r io.Reader) (*Feedback, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxARFSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxARFSize {
		return nil, fmt.Errorf("ARF report larger than %d bytes", MaxARFSize)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotARF, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], "feedback-report") || params["boundary"] == "" {
		return nil, fmt.Errorf("%w: Content-Type %q", ErrNotARF, msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var fb *Feedback
	for i := 0; i < 32; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotARF, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotARF, err)
		}
		switch {
		case pt == "message/feedback-report" && fb == nil:
			if fb, err = parseFeedbackPart(body); err != nil {
				return nil, err
			}
		case (pt == "message/rfc822" || pt == "text/rfc822-headers") && fb != nil && fb.OriginalType == "":
			fb.OriginalType = pt
			fb.Header, fb.Body = splitMessage(body)
			if pt == "text/rfc822-headers" {
				fb.Body = nil
			}
		}
	}
	if fb == nil {
		return nil, fmt.Errorf("%w: no message/feedback-report part", ErrNotARF)
	}
	return fb, nil
}

func parseFeedbackPart(body []byte) (*Feedback, error) {
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(bytes.TrimLeft(body, "\r\n")), strings.NewReader("\r\n\r\n"))))
	h, err := tr.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%w: feedback-report fields: %v", ErrNotARF, err)
	}
	fb := &Feedback{Fields: h}
	get := func(k string) string { return strings.TrimSpace(h.Get(k)) }
	fb.FeedbackType = strings.ToLower(get("Feedback-Type"))
	if fb.FeedbackType == "" {
		return nil, fmt.Errorf("%w: no Feedback-Type", ErrNotARF)
	}
	fb.Version, _ = strconv.Atoi(get("Version"))
	fb.UserAgent = get("User-Agent")
	fb.AuthFailure = strings.ToLower(get("Auth-Failure"))
	fb.IdentityAlignment = strings.ToLower(get("Identity-Alignment"))
	fb.DeliveryResult = strings.ToLower(get("Delivery-Result"))
	if ip, _, _ := strings.Cut(get("Source-IP"), " "); ip != "" {
		fb.SourceIP = ip
	}
	for _, d := range h.Values("Reported-Domain") {
		fb.ReportedDomain = append(fb.ReportedDomain, strings.TrimSpace(d))
	}
	fb.OriginalMailFrom = get("Original-Mail-From")
	for _, v := range h.Values("Original-Rcpt-To") {
		fb.OriginalRcptTo = append(fb.OriginalRcptTo, strings.TrimSpace(v))
	}
	fb.OriginalEnvelopeID = get("Original-Envelope-Id")
	for _, v := range h.Values("Authentication-Results") {
		fb.AuthenticationResults = append(fb.AuthenticationResults, strings.Join(strings.Fields(v), " "))
	}
	if v := get("Reporting-MTA"); v != "" {
		if typ, name, ok := strings.Cut(v, ";"); ok && strings.EqualFold(strings.TrimSpace(typ), "dns") {
			v = name
		}
		fb.ReportingMTA = strings.TrimSpace(v)
	}
	date := get("Arrival-Date")
	if date == "" {
		date = get("Received-Date")
	}
	if date != "" {
		fb.Arrival = parseDate(date)
	}
	fb.DKIMDomain, fb.DKIMSelector, fb.DKIMIdentity = get("DKIM-Domain"), get("DKIM-Selector"), get("DKIM-Identity")
	return fb, nil
}

// splitMessage cuts a message at its first empty line; line ends become
// LF.
func splitMessage(p []byte) (header, body []byte) {
	p = bytes.ReplaceAll(p, []byte("\r\n"), []byte("\n"))
	p = bytes.TrimLeft(p, "\n")
	if i := bytes.Index(p, []byte("\n\n")); i >= 0 {
		return p[:i+1], p[i+2:]
	}
	return p, nil
}

// obsoleteZones are RFC 5322 section 4.3's zone names, which Go's parser
// takes for UTC.
var obsoleteZones = map[string]int{"EDT": -4, "EST": -5, "CDT": -5, "CST": -6, "MDT": -6, "MST": -7, "PDT": -7, "PST": -8}

func parseDate(s string) time.Time {
	t, err := mail.ParseDate(s)
	if err != nil {
		return time.Time{}
	}
	if name, off := t.Zone(); off == 0 {
		if h, ok := obsoleteZones[name]; ok {
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.FixedZone(name, h*3600))
		}
	}
	return t
}
